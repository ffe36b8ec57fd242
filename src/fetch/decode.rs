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
use std::io::Write;

use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};
use flate2::{Crc, Decompress, FlushDecompress, Status};
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

impl DecodeError {
    /// 23 (CURLE_WRITE_ERROR) when the sink failed, else 61 (CURLE_BAD_CONTENT_ENCODING).
    pub fn exit_code(&self) -> u8 {
        match self {
            DecodeError::Write(_) => 23,
            _ => 61,
        }
    }
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
    Gzip(Box<Gzip>),
    Deflate(Box<Deflate>),
    /// The decoder, and whether the stream reached its end.
    Brotli(Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>, bool),
    /// The decoder, and whether the last frame ended and was flushed.
    Zstd(Box<zstd::stream::raw::Decoder<'static>>, bool),
}

impl Stage {
    fn for_coding(name: &[u8]) -> Result<Stage, DecodeError> {
        let lower = name.to_ascii_lowercase();
        let coding = match lower.as_slice() {
            b"gzip" | b"x-gzip" => Coding::Gzip(Box::default()),
            b"deflate" => Coding::Deflate(Box::default()),
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
        match self.coding {
            Coding::Gzip(_) => "gzip",
            Coding::Deflate(_) => "deflate",
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
            Coding::Gzip(g) => g.push(input, buf, emit),
            Coding::Deflate(d) => d.push(input, buf, emit),
            Coding::Brotli(state, done) => brotli_push(state, done, input, buf, emit),
            Coding::Zstd(d, frame_done) => zstd_push(d, frame_done, input, buf, emit),
        }
    }

    fn finish(&mut self, emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        let complete = match &mut self.coding {
            Coding::Gzip(g) => g.phase == GzPhase::Done,
            Coding::Deflate(d) => d.done,
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

/// Run raw deflate (or zlib) over `input`, handing output to `emit`; returns the input
/// bytes used and whether the stream ended. Output is drained whenever the buffer fills,
/// so one call never holds more than `buf`.
fn inflate(
    coding: &'static str,
    d: &mut Decompress,
    mut input: &[u8],
    buf: &mut [u8],
    emit: &mut dyn FnMut(&[u8]) -> Result<(), DecodeError>,
) -> Result<(usize, bool), DecodeError> {
    let start = input.len();
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress(input, buf, FlushDecompress::None)
            .map_err(|e| DecodeError::Corrupt { coding, detail: e.to_string() })?;
        let used = (d.total_in() - in0) as usize;
        let produced = (d.total_out() - out0) as usize;
        input = &input[used..];
        emit(&buf[..produced])?;
        if status == Status::StreamEnd {
            return Ok((start - input.len(), true));
        }
        if produced < buf.len() && (input.is_empty() || used == 0) {
            // Everything usable was used; without progress more looping cannot help.
            if !input.is_empty() {
                return Err(DecodeError::Corrupt { coding, detail: "decoder stalled".into() });
            }
            return Ok((start, false));
        }
    }
}

/// `deflate`: a zlib stream as RFC 9110 says, or raw deflate as some servers send; told
/// apart by the zlib header check on the first two bytes, as curl and browsers do.
#[derive(Default)]
struct Deflate {
    inflater: Option<Decompress>,
    /// The first byte, kept while the second is awaited.
    first: Vec<u8>,
    done: bool,
}

impl Deflate {
    fn push(&mut self, input: &[u8], buf: &mut [u8], emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        if self.done {
            return Ok(()); // Bytes after the end of the stream are ignored, as curl does.
        }
        let inflater = match &mut self.inflater {
            Some(d) => d,
            None => {
                if self.first.is_empty() && input.len() == 1 {
                    self.first.push(input[0]);
                    return Ok(());
                }
                let (a, b) = match self.first.first() {
                    Some(&a) => (a, input[0]),
                    None => (input[0], input[1]),
                };
                let zlib = a & 0x0f == 8 && a >> 4 <= 7 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0;
                self.inflater.insert(Decompress::new(zlib))
            }
        };
        let mut emit_all = |chunk: &[u8]| if chunk.is_empty() { Ok(()) } else { emit(chunk) };
        if !self.first.is_empty() {
            let first = std::mem::take(&mut self.first);
            if inflate("deflate", inflater, &first, buf, &mut emit_all)?.1 {
                self.done = true;
                return Ok(());
            }
        }
        self.done = inflate("deflate", inflater, input, buf, &mut emit_all)?.1;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzPhase {
    Header,
    ExtraLen,
    Extra(u16),
    Name,
    Comment,
    HeaderCrc,
    Body,
    Trailer,
    Done,
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// `gzip` (RFC 1952): header, raw deflate, CRC-32 and length, parsed as a state machine
/// so that the header's fields may arrive split anywhere. One member; bytes after it are
/// ignored, as curl does.
struct Gzip {
    phase: GzPhase,
    /// A fixed-size field being collected (at most the 10-byte header).
    field: Vec<u8>,
    flags: u8,
    inflater: Decompress,
    crc: Crc,
}

impl Default for Gzip {
    fn default() -> Self {
        Gzip {
            phase: GzPhase::Header,
            field: Vec::with_capacity(10),
            flags: 0,
            inflater: Decompress::new(false),
            crc: Crc::new(),
        }
    }
}

impl Gzip {
    /// The phase after `from`, skipping optional header fields the flags do not announce.
    fn next_phase(&self, from: GzPhase) -> GzPhase {
        let order = [
            (GzPhase::ExtraLen, FEXTRA),
            (GzPhase::Name, FNAME),
            (GzPhase::Comment, FCOMMENT),
            (GzPhase::HeaderCrc, FHCRC),
        ];
        let after = match from {
            GzPhase::Header => 0,
            GzPhase::ExtraLen | GzPhase::Extra(_) => 1,
            GzPhase::Name => 2,
            GzPhase::Comment => 3,
            _ => 4,
        };
        order[after..].iter().find(|(_, flag)| self.flags & flag != 0).map_or(GzPhase::Body, |&(p, _)| p)
    }

    /// Collect bytes of a `len`-byte field from `input`; the field when complete.
    fn collect(&mut self, len: usize, input: &mut &[u8]) -> Option<Vec<u8>> {
        let take = (len - self.field.len()).min(input.len());
        self.field.extend_from_slice(&input[..take]);
        *input = &input[take..];
        (self.field.len() == len).then(|| std::mem::take(&mut self.field))
    }

    fn push(&mut self, mut input: &[u8], buf: &mut [u8], emit: &mut Emit<'_>) -> Result<(), DecodeError> {
        let corrupt = |detail: &str| Err(DecodeError::Corrupt { coding: "gzip", detail: detail.to_string() });
        while !input.is_empty() {
            match self.phase {
                GzPhase::Header => {
                    if let Some(h) = self.collect(10, &mut input) {
                        if h[0..2] != [0x1f, 0x8b] {
                            return corrupt("not a gzip stream (bad magic bytes)");
                        }
                        if h[2] != 8 {
                            return corrupt(&format!("unknown compression method {}", h[2]));
                        }
                        if h[3] & 0xe0 != 0 {
                            return corrupt("reserved header flags set");
                        }
                        self.flags = h[3];
                        self.phase = self.next_phase(GzPhase::Header);
                    }
                }
                GzPhase::ExtraLen => {
                    if let Some(n) = self.collect(2, &mut input) {
                        self.phase = GzPhase::Extra(u16::from_le_bytes([n[0], n[1]]));
                    }
                }
                GzPhase::Extra(left) => {
                    let skip = usize::from(left).min(input.len());
                    input = &input[skip..];
                    let left = left - skip as u16;
                    self.phase = if left == 0 { self.next_phase(self.phase) } else { GzPhase::Extra(left) };
                }
                GzPhase::Name | GzPhase::Comment => match input.iter().position(|&b| b == 0) {
                    Some(end) => {
                        input = &input[end + 1..];
                        self.phase = self.next_phase(self.phase);
                    }
                    None => input = &[],
                },
                GzPhase::HeaderCrc => {
                    if self.collect(2, &mut input).is_some() {
                        self.phase = GzPhase::Body;
                    }
                }
                GzPhase::Body => {
                    let crc = &mut self.crc;
                    let mut emit_crc = |chunk: &[u8]| {
                        crc.update(chunk);
                        if chunk.is_empty() { Ok(()) } else { emit(chunk) }
                    };
                    let (used, end) = inflate("gzip", &mut self.inflater, input, buf, &mut emit_crc)?;
                    input = &input[used..];
                    if end {
                        self.phase = GzPhase::Trailer;
                    }
                }
                GzPhase::Trailer => {
                    if let Some(t) = self.collect(8, &mut input) {
                        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                        let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                        if crc != self.crc.sum() {
                            return corrupt(&format!(
                                "crc32 {:08x} expected, {crc:08x} found",
                                self.crc.sum()
                            ));
                        }
                        if size != self.crc.amount() {
                            return corrupt(&format!(
                                "length {} mod 2^32 expected, {size} found",
                                self.crc.amount()
                            ));
                        }
                        self.phase = GzPhase::Done;
                    }
                }
                GzPhase::Done => return Ok(()),
            }
        }
        Ok(())
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
    fn unknown_codings_and_too_many_are_refused_by_name() {
        for (ce, name) in [("compress", "compress"), ("gzip, x-foo", "x-foo"), ("Brotli", "Brotli")] {
            let err = ContentDecoder::new(Some(ce.as_bytes())).unwrap_err();
            assert_eq!(err.to_string(), format!("unsupported content-encoding: {name:?}"));
            assert_eq!(err.exit_code(), 61);
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
            ("gzip", b"not gzip at all".to_vec(), "bad magic"),
            ("gzip", bad_crc, "crc32"),
            ("gzip", bad_size, "length"),
            ("gzip", bad_data, ""),
            ("gzip", [0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0].to_vec(), "compression method 7"),
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
            assert_eq!(err.exit_code(), 61);
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
        // Add a header CRC (flag FHCRC and two bytes after the comment); it is not checked.
        body[3] |= FHCRC;
        let header_end = 10 + 2 + 11 + 9 + 10;
        body.splice(header_end..header_end, [0xab, 0xcd]);
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
    fn a_failing_sink_is_a_write_error_with_exit_23() {
        for ce in [None, Some(&b"gzip"[..])] {
            let mut d = ContentDecoder::new(ce).unwrap();
            let body = if ce.is_some() { gzip(b"data") } else { b"data".to_vec() };
            let err = d.write(&body, &mut Closed).unwrap_err();
            assert!(
                matches!(&err, DecodeError::Write(e) if e.kind() == std::io::ErrorKind::BrokenPipe),
                "{err}"
            );
            assert_eq!(err.exit_code(), 23);
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
