//! Fuzz the content decoders with VALID streams: the fuzzer picks the plaintext, the
//! coding (stacked ones too) and where the encoded body is split; the decoded output
//! must equal the plaintext. The target that would have found the "decoder stalled"
//! bug, which only valid input larger than one output buffer shows.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;
use tcpkit::fetch::decode::ContentDecoder;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 2, ..Default::default() };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// Encode with `coding` (one name) as a server would.
fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => gzip(data),
        "deflate" => zlib(data),
        "raw" => raw(data),
        "br" => br(data),
        _ => zstd(data),
    }
}

/// `len` bytes (up to 512 KiB, past the decoders' 32 KiB buffers) made of pieces of
/// `seed` chosen by a fixed generator: text-like, with matches near and far, unlike
/// one repeated byte or one repeated string.
fn plaintext(seed: &[u8], len: usize) -> Vec<u8> {
    if seed.is_empty() {
        return Vec::new();
    }
    let mut state =
        seed.iter().fold(0x9e37_79b9_7f4a_7c15_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let at = (state % seed.len() as u64) as usize;
        let n = ((state >> 32) % 16 + 1) as usize;
        out.extend_from_slice(&seed[at..seed.len().min(at + n)]);
        out.push(b' ');
    }
    out.truncate(len);
    out
}

const CODINGS: [&[&str]; 8] = [
    &["gzip"],
    &["deflate"],
    &["raw"],
    &["br"],
    &["zstd"],
    &["gzip", "br"],
    &["deflate", "zstd"],
    &["zstd", "gzip"],
];

fuzz_target!(|input: &[u8]| {
    let [which, repeat, cuts @ ..] = input else { return };
    let codings = CODINGS[usize::from(*which) % CODINGS.len()];
    // The rest: up to 8 cut sizes, then the seed of the plaintext.
    let (sizes, text) = cuts.split_at(cuts.len().min(8));
    let plain = plaintext(text, (usize::from(*repeat) + 1) * 2048);
    let mut body = plain.clone();
    for c in codings {
        body = encode(c, &body);
    }
    // "raw" is how a server sends deflate without the zlib wrapper.
    let header =
        codings.iter().map(|c| if *c == "raw" { "deflate" } else { c }).collect::<Vec<_>>().join(", ");
    let mut decoder = ContentDecoder::new(Some(header.as_bytes())).unwrap();
    let mut out = Vec::new();
    let mut rest = &body[..];
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes.get(i % sizes.len().max(1)).map_or(rest.len(), |&s| usize::from(s) * 97 + 1);
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        decoder.write(piece, &mut out).unwrap_or_else(|e| panic!("{header}: {e}"));
        rest = tail;
        i += 1;
    }
    decoder.finish(&mut out).unwrap_or_else(|e| panic!("{header}: {e}"));
    assert!(out == plain, "{header}: {} bytes decoded, {} expected", out.len(), plain.len());
});
