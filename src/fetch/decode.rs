//! Content-Encoding decoding for `--compressed`: gzip, deflate (zlib-wrapped or raw), br
//! and zstd, stacked in any order, streamed.
//!
//! For: turning the body's bytes, in whatever pieces they arrive, into the decoded bytes,
//! written to a sink as they are produced, so memory stays bounded whatever the body
//! size or compression ratio (a decompression bomb costs time, not memory). Not for: body
//! framing (`http1`), judging completeness of the transfer (done on the bytes received,
//! before decoding), or choosing what to ask for in Accept-Encoding.
//!
//! Memory per decoder: one [`OUT_BUF`] buffer per coding, plus the coding's own window:
//! 32 KiB for gzip/deflate, at most 16 MiB for br (standard window, large-window brotli
//! refused) and 8 MiB for zstd ([`ZSTD_WINDOW_LOG_MAX`], RFC 9659's limit for HTTP).
use std::io::{BufRead, Read, Write};

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::bufread::{DeflateDecoder, GzDecoder, ZlibDecoder};
use zstd::stream::raw::{DParameter, InBuffer, Operation, OutBuffer};

/// Most codings accepted in one Content-Encoding (curl's limit too): more is refused
/// rather than building an unbounded chain of decoders.
pub const MAX_ENCODINGS: usize = 5;

/// Size of each coding's output buffer: the most bytes handed on in one piece.
pub const OUT_BUF: usize = 32 * 1024;

/// Largest zstd window accepted, as a power of two (8 MiB, RFC 9659 §3).
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// What went wrong while decoding a body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A coding we cannot undo (compress, a typo...).
    #[error("unsupported content-encoding: {name:?}")]
    Unsupported {
        /// The coding as received.
        name: String,
    },
    /// More stacked codings than [`MAX_ENCODINGS`].
    #[error("too many content-encodings: {count}, at most {MAX_ENCODINGS} are decoded")]
    TooMany {
        /// How many were listed.
        count: usize,
    },
    /// The bytes are not a valid stream of that coding.
    #[error("corrupt {coding} body: {detail}")]
    Corrupt {
        /// The coding: gzip, deflate, br or zstd.
        coding: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The body ended before the coding's end marker.
    #[error("truncated {coding} body: the stream ended before its end")]
    Truncated {
        /// The coding.
        coding: &'static str,
    },
    /// A call after an earlier error: a failed stream is not decoded further.
    #[error("content decoding already failed")]
    AlreadyFailed,
    /// The sink refused the decoded bytes.
    #[error("writing the decoded body failed: {0}")]
    Write(#[source] std::io::Error),
}

/// Where a stage hands its output: the next stage, or the sink.
type Emit<'e> = dyn FnMut(&[u8]) -> Result<(), DecodeError> + 'e;

/// A streaming decoder for one body's Content-Encoding.
pub struct ContentDecoder {
    /// In decoding order: the last coding applied by the server comes first.
    stages: Vec<Stage>,
    /// Set by the first error: decoder states after a failure are not to be trusted.
    failed: bool,
}

impl std::fmt::Debug for ContentDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.stages.iter().map(Stage::name).collect();
        f.debug_struct("ContentDecoder").field("stages", &names).finish()
    }
}

impl ContentDecoder {
    /// A decoder for the Content-Encoding header value (`None`: no header). Codings are
    /// comma-separated, case-insensitive, listed in the order they were applied, and
    /// undone in reverse; `identity` is skipped and `x-gzip` is gzip (RFC 9110 §8.4.1.3).
    pub fn new(content_encoding: Option<&[u8]>) -> Result<Self, DecodeError> {
        let codings: Vec<&[u8]> = content_encoding
            .into_iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"))
            .collect();
        if codings.len() > MAX_ENCODINGS {
            return Err(DecodeError::TooMany { count: codings.len() });
        }
        let stages = codings.iter().rev().map(|c| Stage::for_coding(c)).collect::<Result<_, _>>()?;
        Ok(ContentDecoder { stages, failed: false })
    }

    /// A decoder for a response's Content-Encoding header lines: several lines are one
    /// list (RFC 9110 §5.3), so `deflate` then `gzip` on two lines is `deflate, gzip`.
    pub fn from_header_lines<'v>(lines: impl IntoIterator<Item = &'v [u8]>) -> Result<Self, DecodeError> {
        let joined: Vec<u8> = lines.into_iter().collect::<Vec<_>>().join(&b","[..]);
        ContentDecoder::new(Some(&joined))
    }

    /// Whether bytes pass through unchanged (no coding, or only `identity`): the caller
    /// may then skip the decoder, and even the copy.
    pub fn is_identity(&self) -> bool {
        self.stages.is_empty()
    }

    /// Decode `input` (the next bytes of the body, any size) and write what it yields to
    /// `out`, in pieces of at most [`OUT_BUF`] bytes for a coded body.
    pub fn write(&mut self, input: &[u8], out: &mut dyn Write) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::AlreadyFailed);
        }
        let result = push(&mut self.stages, input, out);
        self.failed = result.is_err();
        result
    }

    /// The body ended: flush what is left and check every coding reached its end marker
    /// (an empty body is accepted for any coding: servers send those for empty files).
    pub fn finish(&mut self, out: &mut dyn Write) -> Result<(), DecodeError> {
        if self.failed {
            return Err(DecodeError::AlreadyFailed);
        }
        let result = finish(&mut self.stages, out);
        self.failed = result.is_err();
        result
    }
}

fn push(stages: &mut [Stage], input: &[u8], out: &mut dyn Write) -> Result<(), DecodeError> {
    match stages.split_first_mut() {
        None if input.is_empty() => Ok(()),
        None => out.write_all(input).map_err(DecodeError::Write),
        Some((first, rest)) => first.push(input, &mut |chunk| push(rest, chunk, out)),
    }
}

fn finish(stages: &mut [Stage], out: &mut dyn Write) -> Result<(), DecodeError> {
    match stages.split_first_mut() {
        None => Ok(()),
        Some((first, rest)) => {
            first.finish(&mut |chunk| push(rest, chunk, out))?;
            finish(rest, out)
        }
    }
}

/// One coding being undone.
struct Stage {
    coding: Coding,
    buf: Box<[u8]>,
    /// Whether any input arrived (an empty body is not a truncated stream).
    started: bool,
}

enum Coding {
    /// gzip or deflate.
    Flate(Box<Flate>),
    /// The decoder, and whether the stream reached its end.
    Brotli(Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>, bool),
    /// The decoder, and whether the last frame ended and was flushed.
    Zstd(Box<zstd::stream::raw::Decoder<'static>>, bool),
}

impl Stage {
    fn for_coding(name: &[u8]) -> Result<Stage, DecodeError> {
        let lower = name.to_ascii_lowercase();
        let coding = match lower.as_slice() {
            b"gzip" | b"x-gzip" => Coding::Flate(Box::new(Flate::Gzip(GzDecoder::new(Feed::default())))),
            b"deflate" => Coding::Flate(Box::new(Flate::Sniffing(Vec::with_capacity(1)))),
            b"br" => {
                let a = StandardAlloc::default;
                // Strict: RFC 7932 windows only (16 MiB), not large-window brotli (1 GiB).
                Coding::Brotli(Box::new(BrotliState::new_strict(a(), a(), a())), false)
            }
            b"zstd" => {
                let corrupt =
                    |e: std::io::Error| DecodeError::Corrupt { coding: "zstd", detail: e.to_string() };
                let mut d = zstd::stream::raw::Decoder::new().map_err(corrupt)?;
                d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX)).map_err(corrupt)?;
                Coding::Zstd(Box::new(d), true)
            }
            _ => return Err(DecodeError::Unsupported { name: String::from_utf8_lossy(name).into_owned() }),
        };
        Ok(Stage { coding, buf: vec![0; OUT_BUF].into_boxed_slice(), started: false })
    }

    fn name(&self) -> &'static str {
        match &self.coding {
            Coding::Flate(f) => f.coding(),
            Coding::Brotli(..) => "br",
            Coding::Zstd(..) => "zstd",
        }
    }

    fn push(&mut self, input: &[u8], emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        if input.is_empty() {
            return Ok(());
        }
        self.started = true;
        let buf = &mut self.buf[..];
        match &mut self.coding {
            Coding::Flate(f) => f.push(input, buf, emit),
            Coding::Brotli(state, done) => brotli_push(state, done, input, buf, emit),
            Coding::Zstd(d, frame_done) => zstd_push(d, frame_done, input, buf, emit),
        }
    }

    fn finish(&mut self, emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        let complete = match &mut self.coding {
            Coding::Flate(f) if self.started => f.finish(&mut self.buf, emit)?,
            Coding::Flate(_) => true,
            Coding::Brotli(_, done) => *done,
            Coding::Zstd(d, frame_done) => {
                // Output may still sit inside zstd when the last push filled the buffer.
                zstd_push(d, frame_done, &[], &mut self.buf, emit)?;
                *frame_done
            }
        };
        if complete || !self.started { Ok(()) } else { Err(DecodeError::Truncated { coding: self.name() }) }
    }
}

/// The input side of a flate2 `bufread` decoder: the bytes handed to the current
/// [`Stage::push`] (at most [`OUT_BUF`] at a time, so its buffer stays that small).
/// Empty and not at the end, it answers `WouldBlock`, which flate2's decoders pass up
/// with their state intact: the decoder then resumes where it stopped at the next push.
#[derive(Debug, Default)]
struct Feed {
    data: Vec<u8>,
    pos: usize,
    /// The body ended: an empty read is the end of the input, not "later".
    eof: bool,
}

impl Feed {
    fn set(&mut self, bytes: &[u8]) {
        self.data.clear();
        self.data.extend_from_slice(bytes);
        self.pos = 0;
    }
}

impl Read for Feed {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(buf.len());
            buf[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Feed {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.pos < self.data.len() {
            Ok(&self.data[self.pos..])
        } else if self.eof {
            Ok(&[])
        } else {
            Err(std::io::ErrorKind::WouldBlock.into())
        }
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.data.len());
    }
}

/// gzip or deflate, each decoded by flate2's own streaming decoder.
enum Flate {
    /// `deflate` before its first two bytes (at most one held): zlib or raw is not
    /// known yet.
    Sniffing(Vec<u8>),
    /// `gzip` (RFC 1952): one member, CRC-32 and length checked; bytes after it ignored.
    Gzip(GzDecoder<Feed>),
    /// `deflate` as RFC 9110 says: zlib-wrapped.
    Zlib(ZlibDecoder<Feed>),
    /// `deflate` as some servers send it: raw.
    Raw(DeflateDecoder<Feed>),
    /// The stream reached its end marker; later bytes are ignored, as curl does.
    Done,
}

impl Flate {
    fn coding(&self) -> &'static str {
        if matches!(self, Flate::Gzip(_)) { "gzip" } else { "deflate" }
    }

    fn reader(&mut self) -> Option<&mut dyn Read> {
        match self {
            Flate::Gzip(d) => Some(d),
            Flate::Zlib(d) => Some(d),
            Flate::Raw(d) => Some(d),
            Flate::Sniffing(_) | Flate::Done => None,
        }
    }

    fn feed(&mut self) -> Option<&mut Feed> {
        match self {
            Flate::Gzip(d) => Some(d.get_mut()),
            Flate::Zlib(d) => Some(d.get_mut()),
            Flate::Raw(d) => Some(d.get_mut()),
            Flate::Sniffing(_) | Flate::Done => None,
        }
    }

    fn push(&mut self, mut input: &[u8], buf: &mut [u8], emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        if let Flate::Sniffing(held) = self {
            // zlib or raw is told apart by the zlib header check on the first two bytes,
            // as curl and browsers do.
            if held.len() + input.len() < 2 {
                held.extend_from_slice(input);
                return Ok(());
            }
            let held = std::mem::take(held);
            let (a, b) = match held.first() {
                Some(&a) => (a, input[0]),
                None => (input[0], input[1]),
            };
            let zlib = a & 0x0f == 8 && a >> 4 <= 7 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0;
            *self = if zlib {
                Flate::Zlib(ZlibDecoder::new(Feed::default()))
            } else {
                Flate::Raw(DeflateDecoder::new(Feed::default()))
            };
            self.push(&held, buf, emit)?;
        }
        while !input.is_empty() {
            let Some(feed) = self.feed() else { return Ok(()) };
            let take = input.len().min(OUT_BUF);
            feed.set(&input[..take]);
            input = &input[take..];
            self.drain(buf, emit)?;
        }
        Ok(())
    }

    /// Read decoded bytes until the decoder wants more input or its stream ended.
    fn drain(&mut self, buf: &mut [u8], emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        let coding = self.coding();
        while let Some(reader) = self.reader() {
            match reader.read(buf) {
                Ok(0) => *self = Flate::Done,
                Ok(n) => emit(&buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(DecodeError::Truncated { coding });
                }
                Err(e) => return Err(DecodeError::Corrupt { coding, detail: e.to_string() }),
            }
        }
        Ok(())
    }

    fn finish(&mut self, buf: &mut [u8], emit: &mut Emit<'_>) -> Result<bool, DecodeError> {
        if let Flate::Sniffing(held) = self {
            return Ok(held.is_empty());
        }
        if let Some(feed) = self.feed() {
            feed.set(&[]);
            feed.eof = true;
        }
        self.drain(buf, emit)?;
        Ok(matches!(self, Flate::Done))
    }
}

fn brotli_push(
    state: &mut BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    done: &mut bool,
    input: &[u8],
    buf: &mut [u8],
    emit: &mut Emit<'_>,
) -> Result<(), DecodeError> {
    let (mut available_in, mut input_offset) = (input.len(), 0);
    while !*done {
        let (mut available_out, mut output_offset, mut total_out) = (buf.len(), 0, 0);
        let result = BrotliDecompressStream(
            &mut available_in,
            &mut input_offset,
            input,
            &mut available_out,
            &mut output_offset,
            buf,
            &mut total_out,
            state,
        );
        if output_offset > 0 {
            emit(&buf[..output_offset])?;
        }
        match result {
            BrotliResult::ResultSuccess => *done = true, // Trailing bytes are ignored.
            BrotliResult::NeedsMoreInput => return Ok(()),
            BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultFailure => {
                let detail = format!("invalid stream ({:?})", state.error_code);
                return Err(DecodeError::Corrupt { coding: "br", detail });
            }
        }
    }
    Ok(())
}

/// zstd frames (several may follow each other); `frame_done` is whether the last frame
/// ended and was flushed completely.
fn zstd_push(
    d: &mut zstd::stream::raw::Decoder<'static>,
    frame_done: &mut bool,
    input: &[u8],
    buf: &mut [u8],
    emit: &mut Emit<'_>,
) -> Result<(), DecodeError> {
    let mut src = InBuffer::around(input);
    loop {
        let before = src.pos();
        let mut dst = OutBuffer::around(&mut *buf);
        let hint = d
            .run(&mut src, &mut dst)
            .map_err(|e| DecodeError::Corrupt { coding: "zstd", detail: e.to_string() })?;
        let produced = dst.pos();
        if hint == 0 {
            *frame_done = true;
        } else if src.pos() > before {
            *frame_done = false;
        }
        if produced > 0 {
            emit(&buf[..produced])?;
        }
        // A full buffer may mean more output is waiting; else all input was taken.
        if produced < buf.len() {
            if src.pos() < input.len() && src.pos() == before && produced == 0 {
                return Err(DecodeError::Corrupt { coding: "zstd", detail: "decoder stalled".into() });
            }
            if src.pos() == input.len() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;

    /// 100 numbered lines; [`BR_TEXT`] is this text compressed by the reference brotli
    /// encoder (quality 11), since the crate has no brotli encoder.
    fn text() -> Vec<u8> {
        (0..100)
            .flat_map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog\n").into_bytes())
            .collect()
    }

    const BR_TEXT: &[u8] = b"\x1b\xa9\x14\x00\x9c\x09\x36\x4e\xa8\x77\x37\x3c\x55\x36\xa5\x5d\xdf\x0e\x4e\x13\x14\x0d\x72\x86\xa7\xa7\xc2\xde\x1a\x44\x61\x2e\x2f\x46\xec\x00\x6c\x78\x08\x25\x10\x64\x89\x06\xfe\x1e\x63\x7d\x5b\x92\x32\x4c\x8b\xbd\xd4\x73\x3b\x72\xcf\xa3\xf7\x4d\x9e\x33\x6e\xff\xef\x7b\x9b\x4e\x43\x53\x4b\x5b\x47\xb7\x1e\xbd\xfa\xe6\x51\x86\x71\x80\x93\x8b\x9b\x87\x37\x1f\xbe\xfa\x72\x16\x07\x27\x17\x37\x0f\x6f\x3e\x7c\xf5\xe5\x2a\x0e\x4e\x2e\x6e\x1e\xde\x7c\xf8\xea\xcb\x5d\x1c\x9c\x5c\xdc\x3c\xbc\xf9\xf0\xd5\x97\xa7\x38\x38\xb9\xb8\x79\x78\xf3\xe1\xab\x2f\xef\xe2\xe0\xe4\xe2\xe6\xe1\xcd\x87\xaf\xbe\x7c\x8a\x83\x93\x8b\x9b\x87\x37\x1f\xbe\xfa\xf2\x2d\x0e\x4e\x2e\x6e\x1e\xde\x7c\xf8\xea\xcb\xaf\x38\x38\xb9\xb8\x79\x78\xf3\xe1\x0b\x0f";

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }

    /// Decode `pieces` in order, then finish.
    fn decode(ce: &str, pieces: &[&[u8]]) -> Result<Vec<u8>, DecodeError> {
        let mut d = ContentDecoder::new(Some(ce.as_bytes()))?;
        let mut out = Vec::new();
        for piece in pieces {
            d.write(piece, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    /// The decoded body, checked to be the same for every split in two and for one
    /// byte at a time.
    fn decode_split(ce: &str, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let whole = decode(ce, &[body]);
        let show = |r: &Result<Vec<u8>, DecodeError>| r.as_ref().map_err(ToString::to_string).cloned();
        for k in 0..=body.len() {
            let split = decode(ce, &[&body[..k], &body[k..]]);
            assert_eq!(show(&split), show(&whole), "{ce}: split at {k}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(show(&decode(ce, &bytes)), show(&whole), "{ce}: one byte at a time");
        whole
    }

    #[test]
    fn every_coding_round_trips_however_the_bytes_are_split() {
        let text = text();
        let cases: [(&str, Vec<u8>); 5] = [
            ("gzip", gzip(&text)),
            ("deflate", zlib(&text)),
            ("deflate", raw_deflate(&text)),
            ("br", BR_TEXT.to_vec()),
            ("zstd", zstd(&text)),
        ];
        for (ce, body) in cases {
            assert_eq!(decode_split(ce, &body).unwrap(), text, "{ce}");
        }
    }

    /// `len` bytes of pseudo-English: words drawn from a small vocabulary by a fixed
    /// generator, with punctuation and line breaks, so it compresses as text does (about
    /// 3:1), unlike one repeated byte, and inflate must copy from all over its window.
    pub(crate) fn prose(len: usize) -> Vec<u8> {
        const WORDS: [&str; 32] = [
            "the",
            "of",
            "and",
            "socket",
            "to",
            "in",
            "a",
            "server",
            "is",
            "that",
            "for",
            "client",
            "connection",
            "with",
            "as",
            "buffer",
            "on",
            "be",
            "request",
            "by",
            "this",
            "response",
            "header",
            "from",
            "body",
            "at",
            "chunk",
            "or",
            "stream",
            "an",
            "window",
            "byte",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            out.extend_from_slice(WORDS[(seed % 32) as usize].as_bytes());
            out.extend_from_slice(match (seed >> 8) % 16 {
                0 => b". ",
                1 => b", ",
                2 => b".\n",
                _ => b" ",
            });
        }
        out.truncate(len);
        out
    }

    fn brotli(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let params = ::brotli::enc::BrotliEncoderParams { quality: 5, ..Default::default() };
        ::brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
        out
    }

    /// The bug behind "decoder stalled": inflate may use no input while it flushes its
    /// window into a short output; multi-MiB text in every coding must decode, whole,
    /// in pieces of odd sizes, and one piece per read-buffer-sized slice.
    #[test]
    fn megabytes_of_text_decode_in_every_coding_whole_and_split_at_odd_sizes() {
        let text = prose(2 << 20);
        let cases: [(&str, Vec<u8>); 6] = [
            ("gzip", gzip(&text)),
            ("deflate", zlib(&text)),
            ("deflate", raw_deflate(&text)),
            ("br", brotli(&text)),
            ("zstd", zstd(&text)),
            ("gzip, br", brotli(&gzip(&text))),
        ];
        for (ce, body) in cases {
            assert!(body.len() < text.len() / 2, "{ce}: text compresses: {}", body.len());
            assert!(decode(ce, &[&body]).unwrap() == text, "{ce}: whole");
            for size in [1usize, 7, 4093, 32 * 1024 + 1, 65_537, 262_144] {
                if size == 1 && body.len() > 400_000 {
                    continue; // One byte at a time is covered by the small cases.
                }
                let pieces: Vec<&[u8]> = body.chunks(size).collect();
                assert!(decode(ce, &pieces).unwrap() == text, "{ce}: pieces of {size}");
            }
        }
    }

    #[test]
    fn no_coding_or_identity_passes_bytes_through() {
        for ce in [None, Some(&b"identity"[..]), Some(b""), Some(b" Identity , ")] {
            let mut d = ContentDecoder::new(ce).unwrap();
            assert!(d.is_identity());
            let mut out = Vec::new();
            d.write(b"plain", &mut out).unwrap();
            d.write(b"", &mut out).unwrap();
            d.finish(&mut out).unwrap();
            assert_eq!(out, b"plain");
        }
    }

    #[test]
    fn coding_names_are_case_insensitive_and_x_gzip_is_gzip() {
        let body = gzip(b"hi");
        for ce in ["GZIP", " gzip ", "x-gzip", "identity, gzip"] {
            assert_eq!(decode(ce, &[&body]).unwrap(), b"hi", "{ce}");
        }
    }

    #[test]
    fn stacked_codings_are_undone_in_reverse_order() {
        let text = text();
        // Listed in the order applied: gzip first, then zstd.
        assert_eq!(decode_split("gzip, zstd", &zstd(&gzip(&text))).unwrap(), text);
        assert_eq!(decode_split("br, gzip", &gzip(BR_TEXT)).unwrap(), text);
        assert_eq!(decode("deflate,gzip,zstd", &[&zstd(&gzip(&zlib(&text)))]).unwrap(), text);
    }

    #[test]
    fn several_content_encoding_lines_are_one_list_undone_in_reverse() {
        let text = text();
        let lines: [&[u8]; 2] = [b"deflate", b"gzip"];
        let mut d = ContentDecoder::from_header_lines(lines).unwrap();
        let mut out = Vec::new();
        d.write(&gzip(&zlib(&text)), &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert_eq!(out, text);
        let six = [&b"gzip, gzip"[..], b"gzip, gzip", b"gzip, gzip"];
        assert!(matches!(ContentDecoder::from_header_lines(six), Err(DecodeError::TooMany { count: 6 })));
    }

    #[test]
    fn unknown_codings_and_too_many_are_refused_by_name() {
        for (ce, name) in [("compress", "compress"), ("gzip, x-foo", "x-foo"), ("Brotli", "Brotli")] {
            let err = ContentDecoder::new(Some(ce.as_bytes())).unwrap_err();
            assert_eq!(err.to_string(), format!("unsupported content-encoding: {name:?}"));
        }
        let six = ["gzip"; MAX_ENCODINGS + 1].join(",");
        let err = ContentDecoder::new(Some(six.as_bytes())).unwrap_err();
        assert!(matches!(err, DecodeError::TooMany { count: 6 }), "{err}");
        assert!(ContentDecoder::new(Some(["gzip"; MAX_ENCODINGS].join(",").as_bytes())).is_ok());
    }

    #[test]
    fn corrupt_streams_are_errors_naming_the_coding() {
        let text = text();
        let mut bad_crc = gzip(&text);
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        let mut bad_size = gzip(&text);
        let at = bad_size.len() - 1;
        bad_size[at] ^= 1;
        let mut bad_data = gzip(&text);
        bad_data[12] ^= 0xff;
        let cases: [(&str, Vec<u8>, &str); 9] = [
            ("gzip", b"not gzip at all".to_vec(), "invalid gzip header"),
            ("gzip", bad_crc, "checksum"),
            ("gzip", bad_size, "checksum"),
            ("gzip", bad_data, ""),
            ("gzip", [0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0].to_vec(), "invalid gzip header"),
            ("deflate", b"\x78\x9c\xff\xff\xff\xff garbage".to_vec(), ""),
            ("deflate", b"\xff\xff\xff\xff".to_vec(), ""),
            ("br", b"\xff\xff\xff\xff garbage".to_vec(), ""),
            ("zstd", b"\x28\xb5\x2f\xfd garbage here".to_vec(), ""),
        ];
        for (ce, body, detail) in cases {
            let err = decode_split(ce, &body).unwrap_err();
            match &err {
                DecodeError::Corrupt { coding, detail: d } => {
                    assert_eq!(*coding, ce);
                    assert!(d.contains(detail), "{ce}: {d}");
                }
                other => panic!("{ce} {body:?}: {other}"),
            }
            assert!(err.to_string().starts_with(&format!("corrupt {ce} body: ")), "{err}");
            // The decoder is not used again after an error.
            let mut d = ContentDecoder::new(Some(ce.as_bytes())).unwrap();
            let mut out = Vec::new();
            let first = d.write(&body, &mut out).and_then(|()| d.finish(&mut out));
            assert!(first.is_err());
            assert!(matches!(d.write(b"more", &mut out), Err(DecodeError::AlreadyFailed)));
            assert!(matches!(d.finish(&mut out), Err(DecodeError::AlreadyFailed)));
        }
    }

    #[test]
    fn a_stream_cut_before_its_end_is_truncated_but_an_empty_body_is_fine() {
        let text = text();
        for (ce, body) in
            [("gzip", gzip(&text)), ("deflate", zlib(&text)), ("br", BR_TEXT.to_vec()), ("zstd", zstd(&text))]
        {
            for cut in [1, 5, body.len() / 2, body.len() - 1] {
                let err = decode(ce, &[&body[..cut]]).unwrap_err();
                assert!(
                    matches!(err, DecodeError::Truncated { coding } if coding == ce),
                    "{ce} cut at {cut}: {err}"
                );
            }
            assert_eq!(decode(ce, &[]).unwrap(), b"", "{ce}");
        }
    }

    #[test]
    fn bytes_after_the_end_of_a_stream_are_ignored() {
        let mut body = gzip(b"payload");
        body.extend_from_slice(b"\0\0 trailing junk");
        assert_eq!(decode("gzip", &[&body]).unwrap(), b"payload");
        let mut body = zlib(b"payload");
        body.extend_from_slice(b"junk");
        assert_eq!(decode("deflate", &[&body]).unwrap(), b"payload");
    }

    #[test]
    fn gzip_optional_header_fields_are_skipped_at_every_split() {
        let mut e = flate2::GzBuilder::new()
            .extra(b"extra field".to_vec())
            .filename("name.txt")
            .comment("a comment")
            .write(Vec::new(), Compression::default());
        e.write_all(b"with header fields").unwrap();
        let mut body = e.finish().unwrap();
        // Add a header CRC (flag FHCRC and the low 16 bits of the header's CRC-32).
        body[3] |= 0x02;
        let header_end = 10 + 2 + 11 + 9 + 10;
        let mut crc = flate2::Crc::new();
        crc.update(&body[..header_end]);
        let crc16 = (crc.sum() as u16).to_le_bytes();
        body.splice(header_end..header_end, crc16);
        assert_eq!(decode_split("gzip", &body).unwrap(), b"with header fields");
    }

    /// A sink that counts and remembers the largest single write.
    #[derive(Default)]
    struct Meter {
        total: u64,
        largest: usize,
        zeros_only: bool,
    }

    impl std::io::Write for Meter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.total += buf.len() as u64;
            self.largest = self.largest.max(buf.len());
            self.zeros_only &= buf.iter().all(|&b| b == 0);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_decompression_bomb_streams_out_in_bounded_pieces() {
        const SIZE: usize = 2 << 20;
        let zeros = vec![0u8; SIZE];
        for (ce, body) in
            [("gzip", gzip(&zeros)), ("zstd", zstd(&zeros)), ("gzip, zstd", zstd(&gzip(&zeros)))]
        {
            assert!(body.len() < SIZE / 500, "{ce}: a bomb is small: {}", body.len());
            let mut d = ContentDecoder::new(Some(ce.as_bytes())).unwrap();
            let mut meter = Meter { zeros_only: true, ..Meter::default() };
            // Fed in one piece: the whole output still goes out in buffer-sized writes.
            d.write(&body, &mut meter).unwrap();
            d.finish(&mut meter).unwrap();
            assert_eq!((meter.total, meter.zeros_only), (SIZE as u64, true), "{ce}");
            assert!(meter.largest <= OUT_BUF, "{ce}: a write of {} bytes", meter.largest);
        }
    }

    struct Closed;

    impl std::io::Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_sink_is_a_write_error() {
        for ce in [None, Some(&b"gzip"[..])] {
            let mut d = ContentDecoder::new(ce).unwrap();
            let body = if ce.is_some() { gzip(b"data") } else { b"data".to_vec() };
            let err = d.write(&body, &mut Closed).unwrap_err();
            assert!(
                matches!(&err, DecodeError::Write(e) if e.kind() == std::io::ErrorKind::BrokenPipe),
                "{err}"
            );
        }
    }

    #[test]
    fn a_zstd_window_over_8_mib_is_refused_not_allocated() {
        let encode = |window_log: u32| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.window_log(window_log).unwrap();
            e.write_all(b"small content, large declared window").unwrap();
            e.finish().unwrap()
        };
        let ok = encode(ZSTD_WINDOW_LOG_MAX);
        assert_eq!(decode("zstd", &[&ok]).unwrap(), b"small content, large declared window");
        let err = decode("zstd", &[&encode(ZSTD_WINDOW_LOG_MAX + 2)]).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Corrupt { coding: "zstd", detail } if detail.contains("memory")),
            "{err}"
        );
    }
}
