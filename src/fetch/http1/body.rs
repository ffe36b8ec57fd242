//! Response bodies: a state machine that takes the body's bytes as they arrive, in any
//! pieces, and hands back the payload without copying it.
//!
//! For: Content-Length, chunked (extensions skipped, trailers kept) and until-close
//! framing, completeness, and truncation as its own error. Not for: content codings
//! (see `fetch::decode`), reading sockets, or deciding the framing (see [`super::body_kind`]).
use super::Http1Error;
use super::request::is_tchar;

/// Default bound on the bytes of a chunked body's trailer section.
pub const DEFAULT_MAX_TRAILERS: usize = 256 * 1024;

/// Bound on the chunk extensions of one chunk-size line; they are skipped, not stored, but
/// an endless line is refused rather than read forever.
pub const MAX_CHUNK_EXTENSION: usize = 16 * 1024;

/// Most hex digits in one chunk size, leading zeros included: 16 make any 64-bit size,
/// the rest is room for zero padding. A longer size line is refused, not read forever.
pub const MAX_CHUNK_SIZE_DIGITS: u32 = 32;

/// How a response body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes (Content-Length).
    Length(u64),
    /// Transfer-Encoding: chunked, complete at the zero-size last chunk.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// What one [`BodyDecoder::decode`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// Bytes of the input used (framing and payload).
    pub consumed: usize,
    /// Payload bytes: a sub-slice of `input[..consumed]`, possibly empty.
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex digits of a chunk size.
    Size {
        value: u64,
        digits: u32,
    },
    /// Spaces or tabs after the digits (BWS before `;` or the line end).
    SizeSpace,
    /// Inside chunk extensions, skipped; `len` bytes so far on this line.
    Extension {
        len: usize,
    },
    /// A CR ended the size line; the LF must follow.
    SizeLf,
    /// Payload of the current chunk still owed.
    Data {
        remaining: u64,
    },
    /// After chunk data: CRLF (or a bare LF) must follow.
    DataCr,
    DataLf,
    /// After the last chunk, at the start of a trailer line or of the final blank line.
    TrailerStart,
    /// Inside a trailer line, which is collected in `line`.
    Trailer,
    /// A CR began the final blank line; the LF must follow.
    EndLf,
    /// The final blank line was read.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Length { remaining: u64 },
    Chunked(Chunk),
    UntilClose { closed: bool },
}

/// Decodes the framing of one response body. See [`BodyDecoder::decode`] for the loop.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: BodyKind,
    state: State,
    /// Bytes consumed so far, framing included: the offset of the next byte.
    received: u64,
    /// Payload bytes handed out so far.
    payload: u64,
    /// The size of the chunk whose size line is being read.
    chunk_size: u64,
    /// The trailer line being collected, and where it started.
    line: Vec<u8>,
    line_start: u64,
    /// Trailer bytes so far, bounded by `max_trailers`.
    trailer_bytes: usize,
    /// Bound on the trailer section in bytes; over it is an error, not a bigger buffer.
    max_trailers: usize,
    trailers: Vec<(String, Vec<u8>)>,
}

impl BodyDecoder {
    /// A decoder for a body framed as `kind`, with [`DEFAULT_MAX_TRAILERS`].
    pub fn new(kind: BodyKind) -> Self {
        let state = match kind {
            BodyKind::Empty => State::Length { remaining: 0 },
            BodyKind::Length(n) => State::Length { remaining: n },
            BodyKind::Chunked => State::Chunked(Chunk::Size { value: 0, digits: 0 }),
            BodyKind::UntilClose => State::UntilClose { closed: false },
        };
        BodyDecoder {
            kind,
            state,
            received: 0,
            payload: 0,
            chunk_size: 0,
            line: Vec::new(),
            line_start: 0,
            trailer_bytes: 0,
            max_trailers: DEFAULT_MAX_TRAILERS,
            trailers: Vec::new(),
        }
    }

    /// Bound the trailer section of a chunked body to `limit` bytes (the caller's
    /// `--max-head`, typically); a longer one is a [`Http1Error::BadChunk`].
    pub fn with_max_trailers(mut self, limit: usize) -> Self {
        self.max_trailers = limit;
        self
    }

    /// Consume some of `input` and return the payload found there, as a sub-slice of it.
    ///
    /// Call again with `&input[consumed..]` while bytes are left and the body is not
    /// complete; the decoder keeps no input of its own, so every byte before completion
    /// is consumed and nothing needs to be kept for later. A call with non-empty input on
    /// an incomplete body consumes at least one byte. Bytes after the end of the body are
    /// not consumed: they belong to the next response.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<Decoded<'a>, Http1Error> {
        let decoded = match &mut self.state {
            State::Length { remaining } => {
                let n = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                *remaining -= n as u64;
                Decoded { consumed: n, data: &input[..n] }
            }
            State::UntilClose { closed: false } => Decoded { consumed: input.len(), data: input },
            State::UntilClose { closed: true } => Decoded { consumed: 0, data: &[] },
            State::Chunked(chunk) => {
                let chunk = *chunk;
                self.decode_chunked(chunk, input)?
            }
        };
        self.received += decoded.consumed as u64;
        self.payload += decoded.data.len() as u64;
        Ok(decoded)
    }

    fn decode_chunked<'a>(&mut self, mut chunk: Chunk, input: &'a [u8]) -> Result<Decoded<'a>, Http1Error> {
        let mut result = Ok(Decoded { consumed: input.len(), data: &[] });
        for (i, &byte) in input.iter().enumerate() {
            match chunk {
                Chunk::Done => {
                    result = Ok(Decoded { consumed: i, data: &[] });
                    break;
                }
                Chunk::Data { remaining } => {
                    // Payload runs to the end of the chunk or of the input, whichever is first.
                    let n = usize::try_from(remaining).map_or(input.len() - i, |r| r.min(input.len() - i));
                    let left = remaining - n as u64;
                    chunk = if left == 0 { Chunk::DataCr } else { Chunk::Data { remaining: left } };
                    result = Ok(Decoded { consumed: i + n, data: &input[i..i + n] });
                    break;
                }
                _ => match self.step(chunk, byte, self.received + i as u64) {
                    Ok(next) => chunk = next,
                    Err(e) => {
                        // The bytes before the bad one were consumed.
                        self.received += i as u64;
                        result = Err(e);
                        break;
                    }
                },
            }
        }
        self.state = State::Chunked(chunk);
        result
    }

    /// One framing byte at body offset `offset`: the next state, or what was wrong.
    fn step(&mut self, chunk: Chunk, byte: u8, offset: u64) -> Result<Chunk, Http1Error> {
        let bad = |reason: &str| Err(Http1Error::BadChunk { offset, reason: reason.to_string() });
        Ok(match chunk {
            Chunk::Size { value, digits } => match (hex_value(byte), byte) {
                (Some(_), _) if digits >= MAX_CHUNK_SIZE_DIGITS => {
                    return bad(&format!("chunk size longer than {MAX_CHUNK_SIZE_DIGITS} hex digits"));
                }
                (Some(d), _) => {
                    let value = value
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(d))
                        .ok_or(Http1Error::ChunkSizeOverflow { offset })?;
                    Chunk::Size { value, digits: digits + 1 }
                }
                (None, _) if digits == 0 => return Err(Http1Error::BadChunkSize { offset, byte }),
                (None, b' ' | b'\t') => {
                    self.chunk_size = value;
                    Chunk::SizeSpace
                }
                (None, b';') => {
                    self.chunk_size = value;
                    Chunk::Extension { len: 0 }
                }
                (None, b'\r') => {
                    self.chunk_size = value;
                    Chunk::SizeLf
                }
                (None, b'\n') => {
                    self.chunk_size = value;
                    self.end_size_line()
                }
                (None, _) => return Err(Http1Error::BadChunkSize { offset, byte }),
            },
            Chunk::SizeSpace => match byte {
                b' ' | b'\t' => Chunk::SizeSpace,
                b';' => Chunk::Extension { len: 0 },
                b'\r' => Chunk::SizeLf,
                b'\n' => self.end_size_line(),
                _ => return Err(Http1Error::BadChunkSize { offset, byte }),
            },
            Chunk::Extension { len } => match byte {
                b'\r' => Chunk::SizeLf,
                b'\n' => self.end_size_line(),
                _ if len >= MAX_CHUNK_EXTENSION => {
                    return bad(&format!("chunk extension longer than {MAX_CHUNK_EXTENSION} bytes"));
                }
                _ if is_ctl(byte) => return bad(&format!("control byte {byte:#04x} in chunk extension")),
                _ => Chunk::Extension { len: len + 1 },
            },
            Chunk::SizeLf => match byte {
                b'\n' => self.end_size_line(),
                _ => return bad("expected LF after CR in chunk size line"),
            },
            Chunk::DataCr => match byte {
                b'\r' => Chunk::DataLf,
                b'\n' => Chunk::Size { value: 0, digits: 0 },
                _ => return bad("expected CRLF after chunk data"),
            },
            Chunk::DataLf => match byte {
                b'\n' => Chunk::Size { value: 0, digits: 0 },
                _ => return bad("expected LF after CR after chunk data"),
            },
            Chunk::TrailerStart => match byte {
                b'\r' => Chunk::EndLf,
                b'\n' => Chunk::Done,
                _ => {
                    self.line.clear();
                    self.line_start = offset;
                    self.push_trailer_byte(byte, offset)?;
                    Chunk::Trailer
                }
            },
            Chunk::Trailer => match byte {
                b'\n' => {
                    self.end_trailer_line()?;
                    Chunk::TrailerStart
                }
                _ => {
                    self.push_trailer_byte(byte, offset)?;
                    Chunk::Trailer
                }
            },
            Chunk::EndLf => match byte {
                b'\n' => Chunk::Done,
                _ => return bad("expected LF after CR ending the trailer section"),
            },
            // Never passed here: decode_chunked moves payload and stops at completion.
            Chunk::Data { .. } | Chunk::Done => chunk,
        })
    }

    fn end_size_line(&mut self) -> Chunk {
        match self.chunk_size {
            0 => Chunk::TrailerStart,
            size => Chunk::Data { remaining: size },
        }
    }

    fn push_trailer_byte(&mut self, byte: u8, offset: u64) -> Result<(), Http1Error> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailers {
            let reason = format!("trailer section longer than {} bytes", self.max_trailers);
            return Err(Http1Error::BadChunk { offset, reason });
        }
        self.line.push(byte);
        Ok(())
    }

    /// A trailer line `name: value` (the CR, if any, still at its end) is complete.
    fn end_trailer_line(&mut self) -> Result<(), Http1Error> {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        let bad = |at: usize, reason: &str| Http1Error::BadChunk {
            offset: self.line_start + at as u64,
            reason: reason.to_string(),
        };
        let colon =
            line.iter().position(|&b| b == b':').ok_or_else(|| bad(0, "trailer line without a colon"))?;
        if colon == 0 {
            return Err(bad(0, "trailer line with an empty name"));
        }
        if let Some(at) = line[..colon].iter().position(|&b| !is_tchar(b)) {
            return Err(bad(at, "invalid byte in trailer name"));
        }
        let value = &line[colon + 1..];
        if let Some(at) = value.iter().position(|&b| is_ctl(b)) {
            return Err(bad(colon + 1 + at, "control byte in trailer value"));
        }
        let name = String::from_utf8_lossy(&line[..colon]).into_owned();
        self.trailers.push((name, value.trim_ascii().to_vec()));
        Ok(())
    }

    /// Whether the whole body has been consumed. Never true for an until-close body
    /// before [`BodyDecoder::finish`].
    pub fn is_complete(&self) -> bool {
        match self.state {
            State::Length { remaining } => remaining == 0,
            State::Chunked(chunk) => chunk == Chunk::Done,
            State::UntilClose { closed } => closed,
        }
    }

    /// The connection reached EOF: `Ok` when the body is complete (an until-close body
    /// always is; a chunked body is once its last chunk was read, even without the final
    /// CRLF or with a trailer line cut short, which is dropped), else
    /// [`Http1Error::Truncated`] saying how many bytes arrived and where it stopped.
    pub fn finish(&mut self) -> Result<(), Http1Error> {
        let detail = match &self.state {
            State::Length { remaining: 0 } => return Ok(()),
            State::Length { .. } => String::new(),
            State::UntilClose { .. } => {
                self.state = State::UntilClose { closed: true };
                return Ok(());
            }
            State::Chunked(Chunk::Done) => return Ok(()),
            State::Chunked(Chunk::TrailerStart | Chunk::Trailer | Chunk::EndLf) => {
                self.line.clear();
                self.state = State::Chunked(Chunk::Done);
                return Ok(());
            }
            State::Chunked(Chunk::Data { remaining }) => {
                format!("closed in chunk data with {remaining} bytes of the chunk missing")
            }
            State::Chunked(Chunk::Size { digits: 0, .. } | Chunk::DataCr | Chunk::DataLf) => {
                "closed before the last chunk".to_string()
            }
            State::Chunked(
                Chunk::Size { .. } | Chunk::SizeSpace | Chunk::Extension { .. } | Chunk::SizeLf,
            ) => "closed in a chunk size line".to_string(),
        };
        Err(Http1Error::Truncated { received: self.received, expected: self.expected(), detail })
    }

    /// Body bytes received on the wire so far, before any decoding: for a chunked body
    /// the chunk framing counts too.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Payload bytes handed out so far (equal to [`BodyDecoder::received`] unless chunked).
    pub fn payload(&self) -> u64 {
        self.payload
    }

    /// The announced length: Content-Length, or 0 for a body that cannot exist.
    pub fn expected(&self) -> Option<u64> {
        match self.kind {
            BodyKind::Empty => Some(0),
            BodyKind::Length(n) => Some(n),
            BodyKind::Chunked | BodyKind::UntilClose => None,
        }
    }

    /// For a Content-Length (or empty) body, the bytes still owed: the caller may move
    /// exactly that many without looking at them.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length { remaining } => Some(remaining),
            _ => None,
        }
    }

    /// Trailer fields of a chunked body, in order, names as received; empty before the
    /// last chunk.
    pub fn trailers(&self) -> &[(String, Vec<u8>)] {
        &self.trailers
    }
}

fn hex_value(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// Control bytes other than HTAB, which may not appear in field values or extensions.
fn is_ctl(b: u8) -> bool {
    (b < b' ' && b != b'\t') || b == 0x7f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a decoder made of a whole body stream delivered in some pieces, then EOF.
    #[derive(Debug, PartialEq)]
    struct Outcome {
        body: Vec<u8>,
        /// Bytes left unconsumed after completion (the next response's).
        rest: Vec<u8>,
        trailers: Vec<(String, Vec<u8>)>,
        received: u64,
        /// The first error, from `decode` or from `finish` at EOF.
        result: Result<(), Http1Error>,
    }

    /// Feed `pieces` the way the fetch loop does, then signal EOF. At most one call per
    /// input byte plus one per piece can be made, so the loop is bounded.
    fn run(kind: BodyKind, pieces: &[&[u8]], eof: bool) -> Outcome {
        let mut dec = BodyDecoder::new(kind);
        let (mut body, mut rest) = (Vec::new(), Vec::new());
        let mut result = Ok(());
        'feed: for piece in pieces {
            let mut input = *piece;
            while !input.is_empty() {
                if dec.is_complete() {
                    rest.extend_from_slice(input);
                    continue 'feed;
                }
                match dec.decode(input) {
                    Ok(d) => {
                        assert!(d.consumed > 0, "no progress on {input:?}");
                        assert!(d.data.len() <= d.consumed);
                        body.extend_from_slice(d.data);
                        input = &input[d.consumed..];
                    }
                    Err(e) => {
                        result = Err(e);
                        break 'feed;
                    }
                }
            }
        }
        if result.is_ok() && eof {
            result = dec.finish();
        }
        Outcome { body, rest, trailers: dec.trailers().to_vec(), received: dec.received(), result }
    }

    /// The outcome for `input` whole, checked equal to the outcome for every split into
    /// two pieces and for one byte at a time (habit 6).
    fn run_split(kind: BodyKind, input: &[u8]) -> Outcome {
        let whole = run(kind, &[input], true);
        for k in 0..=input.len() {
            let split = run(kind, &[&input[..k], &input[k..]], true);
            assert_eq!(split, whole, "split at {k} of {:?}", String::from_utf8_lossy(input));
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(kind, &bytes, true), whole, "one byte at a time");
        whole
    }

    fn trailer(name: &str, value: &str) -> (String, Vec<u8>) {
        (name.to_string(), value.as_bytes().to_vec())
    }

    #[test]
    fn content_length_body_stops_at_the_length_leaving_the_next_response() {
        let out = run_split(BodyKind::Length(5), b"helloHTTP/1.1 200 OK\r\n");
        assert_eq!(out.body, b"hello");
        assert_eq!(out.rest, b"HTTP/1.1 200 OK\r\n");
        assert_eq!((out.received, out.result), (5, Ok(())));
    }

    #[test]
    fn short_content_length_body_is_truncated_with_counts() {
        let out = run_split(BodyKind::Length(100), b"0123456789");
        assert_eq!(out.body, b"0123456789");
        let err = out.result.unwrap_err();
        assert_eq!(err, Http1Error::Truncated { received: 10, expected: Some(100), detail: String::new() });
        assert_eq!(err.to_string(), "partial body: 10 of 100 bytes received");
        // A close before any byte of the body is truncation too.
        let out = run_split(BodyKind::Length(3), b"");
        assert!(matches!(out.result, Err(Http1Error::Truncated { received: 0, expected: Some(3), .. })));
    }

    #[test]
    fn remaining_counts_down_the_content_length() {
        let mut dec = BodyDecoder::new(BodyKind::Length(10));
        assert_eq!((dec.expected(), dec.remaining(), dec.is_complete()), (Some(10), Some(10), false));
        assert_eq!(dec.decode(b"abcd").unwrap(), Decoded { consumed: 4, data: b"abcd" });
        assert_eq!(dec.remaining(), Some(6));
        assert_eq!(dec.decode(b"efghijKL").unwrap(), Decoded { consumed: 6, data: b"efghij" });
        assert_eq!((dec.remaining(), dec.is_complete(), dec.received()), (Some(0), true, 10));
        assert_eq!(dec.decode(b"KL").unwrap().consumed, 0);
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn huge_content_length_is_bounded_by_the_input_not_memory() {
        let mut dec = BodyDecoder::new(BodyKind::Length(u64::MAX));
        assert_eq!(dec.decode(b"abc").unwrap().data, b"abc");
        assert_eq!(dec.remaining(), Some(u64::MAX - 3));
        assert!(matches!(dec.finish(), Err(Http1Error::Truncated { received: 3, .. })));
    }

    #[test]
    fn empty_and_zero_length_bodies_are_complete_at_once() {
        for kind in [BodyKind::Empty, BodyKind::Length(0)] {
            let out = run_split(kind, b"HTTP/1.1 200 OK\r\n");
            assert_eq!((out.body.len(), out.rest.len(), out.result), (0, 17, Ok(())));
            assert!(BodyDecoder::new(kind).is_complete());
        }
    }

    #[test]
    fn until_close_body_is_everything_and_complete_at_eof() {
        let out = run_split(BodyKind::UntilClose, b"all of it\r\n0\r\n\r\n");
        assert_eq!((out.body.as_slice(), out.result), (&b"all of it\r\n0\r\n\r\n"[..], Ok(())));
        let mut dec = BodyDecoder::new(BodyKind::UntilClose);
        assert!(!dec.is_complete());
        assert_eq!((dec.expected(), dec.remaining()), (None, None));
        dec.finish().unwrap();
        assert!(dec.is_complete());
        // An empty until-close body is fine here; an empty *reply* is the caller's concern.
        assert_eq!(run(BodyKind::UntilClose, &[], true).result, Ok(()));
    }

    #[test]
    fn chunked_body_joins_chunks_at_every_split() {
        let input = b"5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\nNEXT";
        let out = run_split(BodyKind::Chunked, input);
        assert_eq!(out.body, b"hello world!");
        assert_eq!(out.rest, b"NEXT");
        assert_eq!(out.received, (input.len() - 4) as u64);
        assert_eq!(out.result, Ok(()));
        assert!(out.trailers.is_empty());
    }

    #[test]
    fn chunk_sizes_are_hex_any_case_with_leading_zeros() {
        let mut input = b"1A\r\n".to_vec();
        input.extend_from_slice(&[b'x'; 26]);
        input.extend_from_slice(b"\r\n00000000000000000000a\r\n0123456789\r\n000\r\n\r\n");
        let out = run_split(BodyKind::Chunked, &input);
        assert_eq!(out.body.len(), 36);
        assert_eq!(out.result, Ok(()));
    }

    #[test]
    fn a_chunk_size_with_endless_leading_zeros_is_refused_at_the_bound() {
        let at_bound = format!("{}5\r\nhello\r\n0\r\n\r\n", "0".repeat(MAX_CHUNK_SIZE_DIGITS as usize - 1));
        let out = run_split(BodyKind::Chunked, at_bound.as_bytes());
        assert_eq!((out.body.as_slice(), out.result), (&b"hello"[..], Ok(())));
        let zeros = vec![b'0'; 1 << 20];
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        let err = d.decode(&zeros).unwrap_err();
        let want = format!("chunk size longer than {MAX_CHUNK_SIZE_DIGITS} hex digits");
        assert_eq!(err, Http1Error::BadChunk { offset: u64::from(MAX_CHUNK_SIZE_DIGITS), reason: want });
    }

    #[test]
    fn chunk_extensions_are_skipped_and_spaces_before_them_allowed() {
        let input =
            b"5;name=value;quoted=\"a;b\"\r\nhello\r\n3 \t; ext\r\nabc\r\n6  \r\nfoobar\r\n0;last\r\n\r\n";
        let out = run_split(BodyKind::Chunked, input);
        assert_eq!((out.body.as_slice(), out.result), (&b"helloabcfoobar"[..], Ok(())));
    }

    #[test]
    fn trailers_are_kept_in_order_with_names_as_received() {
        let input = b"3\r\nabc\r\n0\r\nDigest: sha-256=xyz\r\nX-Trailer:  two words \r\n\r\n";
        let out = run_split(BodyKind::Chunked, input);
        assert_eq!(out.body, b"abc");
        assert_eq!(out.trailers, vec![trailer("Digest", "sha-256=xyz"), trailer("X-Trailer", "two words")]);
        assert_eq!(out.result, Ok(()));
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let out = run_split(BodyKind::Chunked, b"3\nabc\n2;x\nde\n0\nT: v\n\n");
        assert_eq!((out.body.as_slice(), out.result), (&b"abcde"[..], Ok(())));
        assert_eq!(out.trailers, vec![trailer("T", "v")]);
    }

    #[test]
    fn chunked_body_is_complete_at_the_last_chunk_without_the_final_crlf() {
        for input in [&b"3\r\nabc\r\n0\r\n"[..], b"3\r\nabc\r\n0\r\n\r", b"3\r\nabc\r\n0\r\nX-Cut: par"] {
            let out = run_split(BodyKind::Chunked, input);
            assert_eq!((out.body.as_slice(), &out.result), (&b"abc"[..], &Ok(())), "{input:?}");
            assert!(out.trailers.is_empty(), "a cut trailer line is dropped");
        }
        // But not complete before EOF says so: more trailers may come.
        let mut dec = BodyDecoder::new(BodyKind::Chunked);
        dec.decode(b"0\r\n").unwrap();
        assert!(!dec.is_complete());
        dec.finish().unwrap();
        assert!(dec.is_complete());
    }

    #[test]
    fn chunked_truncation_is_its_own_error_for_every_place_it_can_stop() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "closed before the last chunk"),
            (b"5\r\nhel", "closed in chunk data with 2 bytes of the chunk missing"),
            (b"5\r\nhello", "closed before the last chunk"),
            (b"5\r\nhello\r", "closed before the last chunk"),
            (b"5\r\nhello\r\n", "closed before the last chunk"),
            (b"5\r\nhello\r\n1", "closed in a chunk size line"),
            (b"5\r\nhello\r\n1a;ext", "closed in a chunk size line"),
            (b"5\r\nhello\r\n1a\r", "closed in a chunk size line"),
            (b"5\r\nhello\r\n0", "closed in a chunk size line"),
        ];
        for &(input, detail) in cases {
            let out = run_split(BodyKind::Chunked, input);
            let err = out.result.unwrap_err();
            let want =
                Http1Error::Truncated { received: input.len() as u64, expected: None, detail: detail.into() };
            assert_eq!(err, want, "{:?}", String::from_utf8_lossy(input));
        }
        let err = run(BodyKind::Chunked, &[b"5\r\nhel"], true).result.unwrap_err();
        assert_eq!(
            err.to_string(),
            "partial body: 6 bytes received, closed in chunk data with 2 bytes of the chunk missing"
        );
    }

    #[test]
    fn bad_chunk_sizes_name_the_byte_and_its_offset() {
        let cases: &[(&[u8], Http1Error)] = &[
            (b"xyz\r\n", Http1Error::BadChunkSize { offset: 0, byte: b'x' }),
            (b"\r\n", Http1Error::BadChunkSize { offset: 0, byte: b'\r' }),
            (b" 5\r\n", Http1Error::BadChunkSize { offset: 0, byte: b' ' }),
            (b"-1\r\n", Http1Error::BadChunkSize { offset: 0, byte: b'-' }),
            (b"0x10\r\n", Http1Error::BadChunkSize { offset: 1, byte: b'x' }),
            (b"3\r\nabc\r\n5g\r\n", Http1Error::BadChunkSize { offset: 9, byte: b'g' }),
            (b"3\r\nabc\r\n5 6\r\n", Http1Error::BadChunkSize { offset: 10, byte: b'6' }),
        ];
        for (input, want) in cases {
            let err = run_split(BodyKind::Chunked, input).result.unwrap_err();
            assert_eq!(&err, want, "{:?}", String::from_utf8_lossy(input));
        }
        let err = run(BodyKind::Chunked, &[b"3\r\nabc\r\n5g\r\n"], true).result.unwrap_err();
        assert_eq!(err.to_string(), "bad chunk size: unexpected byte 0x67 at byte 9 of the body");
    }

    #[test]
    fn chunk_size_over_64_bits_overflows_at_the_digit() {
        // 16 hex digits is the most that fits; the 17th significant one overflows.
        let max = run_split(BodyKind::Chunked, b"ffffffffffffffff\r\nabc");
        assert!(matches!(max.result, Err(Http1Error::Truncated { .. })), "{:?}", max.result);
        for (input, offset) in [(&b"10000000000000000\r\n"[..], 16), (b"3\r\nabc\r\nfffffffffffffffff0", 24)]
        {
            let err = run_split(BodyKind::Chunked, input).result.unwrap_err();
            assert_eq!(err, Http1Error::ChunkSizeOverflow { offset });
        }
    }

    #[test]
    fn broken_chunk_framing_is_an_error_naming_the_offset() {
        let cases: &[(&[u8], u64, &str)] = &[
            (b"3\r\nabcd\r\n", 6, "expected CRLF after chunk data"),
            (b"3\r\nabc\rX", 7, "expected LF after CR after chunk data"),
            (b"3\rX", 2, "expected LF after CR in chunk size line"),
            (b"3;a\x01b\r\n", 3, "control byte 0x01 in chunk extension"),
            (b"0\r\nNoColon\r\n\r\n", 3, "trailer line without a colon"),
            (b"0\r\n: v\r\n\r\n", 3, "trailer line with an empty name"),
            (b"0\r\nA: b\r\nBad Name: v\r\n\r\n", 12, "invalid byte in trailer name"),
            (b"0\r\nA: b\x00\r\n\r\n", 7, "control byte in trailer value"),
            (b"0\r\n\rX", 4, "expected LF after CR ending the trailer section"),
        ];
        for &(input, offset, reason) in cases {
            let err = run_split(BodyKind::Chunked, input).result.unwrap_err();
            assert_eq!(
                err,
                Http1Error::BadChunk { offset, reason: reason.into() },
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn endless_extensions_and_trailers_are_refused_at_their_limit() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'e', MAX_CHUNK_EXTENSION + 10));
        let err = run(BodyKind::Chunked, &[&ext], true).result.unwrap_err();
        let want = format!("chunk extension longer than {MAX_CHUNK_EXTENSION} bytes");
        assert_eq!(err, Http1Error::BadChunk { offset: 2 + MAX_CHUNK_EXTENSION as u64, reason: want });

        let mut dec = BodyDecoder::new(BodyKind::Chunked).with_max_trailers(10);
        dec.decode(b"0\r\nA: 123456\r\n").unwrap(); // 10 trailer bytes (CR included): at the limit
        let err = dec.decode(b"B").unwrap_err();
        assert_eq!(
            err,
            Http1Error::BadChunk { offset: 14, reason: "trailer section longer than 10 bytes".into() }
        );
    }

    #[test]
    fn payload_and_received_differ_by_the_chunk_framing() {
        let mut dec = BodyDecoder::new(BodyKind::Chunked);
        let input = b"4\r\nabcd\r\n0\r\n\r\n";
        let mut rest = &input[..];
        let mut calls = 0;
        while !rest.is_empty() && !dec.is_complete() {
            let d = dec.decode(rest).unwrap();
            rest = &rest[d.consumed..];
            calls += 1;
            assert!(calls < 10);
        }
        assert_eq!((dec.payload(), dec.received(), dec.expected(), dec.remaining()), (4, 14, None, None));
    }

    #[test]
    fn many_chunks_fed_in_uneven_pieces_give_the_exact_payload() {
        // 200 chunks of sizes 1..=600 in a fixed pseudo-random order, every third with an
        // extension, then trailers: fed in pieces of 1 to 13 bytes, and in reads of 4 KiB.
        let (mut wire, mut payload) = (Vec::new(), Vec::new());
        let mut seed = 7u32;
        for i in 0..200 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let size = (seed >> 16) as usize % 600 + 1;
            let data: Vec<u8> = (0..size).map(|j| ((i * 31 + j) % 251) as u8).collect();
            let ext = if i % 3 == 0 { ";i=\"x\"" } else { "" };
            wire.extend_from_slice(format!("{size:x}{ext}\r\n").as_bytes());
            wire.extend_from_slice(&data);
            wire.extend_from_slice(b"\r\n");
            payload.extend_from_slice(&data);
        }
        wire.extend_from_slice(b"0\r\nX-Sum: 1\r\n\r\n");
        let mut pieces = Vec::new();
        let mut rest = &wire[..];
        for size in (1..=13).cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        let uneven = run(BodyKind::Chunked, &pieces, true);
        let reads: Vec<&[u8]> = wire.chunks(4096).collect();
        assert_eq!(run(BodyKind::Chunked, &reads, true), uneven);
        assert_eq!(uneven.body, payload);
        assert_eq!(uneven.trailers, vec![trailer("X-Sum", "1")]);
        assert_eq!((uneven.received, uneven.result), (wire.len() as u64, Ok(())));
    }

    // Tests that kill the mutants scripts/mutants found alive (see TESTING.md).

    #[test]
    fn chunk_sizes_are_hexadecimal_of_any_case_and_many_digits() {
        let out = run_split(
            BodyKind::Chunked,
            b"A\r\n0123456789\r\n1f\r\nabcdefghijklmnopqrstuvwxyz01234\r\n0\r\n\r\n",
        );
        assert_eq!(out.body.len(), 10 + 31);
        assert_eq!(out.result, Ok(()));
        let out = run(BodyKind::Chunked, &[b"1F\r\n", &[b'x'; 31], b"\r\n0\r\n\r\n"], true);
        assert_eq!((out.body.len(), out.result), (31, Ok(())));
        let out = run(BodyKind::Chunked, &[b"100\r\n", &[b'y'; 256], b"\r\n0\r\n\r\n"], true);
        assert_eq!((out.body.len(), out.result), (256, Ok(())));
    }

    #[test]
    fn bare_lf_ends_every_line_of_the_chunked_framing() {
        // Size line, after BWS, after an extension, after data, trailer, final blank line.
        for input in [
            &b"3\nabc\n0\n\n"[..],
            b"3 \nabc\r\n0\r\n\r\n",
            b"3;x=y\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3\r\nabc\r\n0\r\nT: v\n\n",
            b"3\r\nabc\r\n0\r\n\n",
        ] {
            let out = run_split(BodyKind::Chunked, input);
            assert_eq!(
                (out.body.as_slice(), &out.result),
                (&b"abc"[..], &Ok(())),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            let mut dec = BodyDecoder::new(BodyKind::Chunked);
            let d = dec.decode(input).unwrap();
            let mut used = d.consumed;
            while !dec.is_complete() && used < input.len() {
                used += dec.decode(&input[used..]).unwrap().consumed;
            }
            assert!(dec.is_complete(), "{:?} not complete", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn error_offsets_and_received_count_across_calls() {
        let mut dec = BodyDecoder::new(BodyKind::Chunked);
        assert_eq!(dec.decode(b"5\r\n").unwrap().consumed, 3);
        assert_eq!(dec.decode(b"hello").unwrap().data, b"hello");
        assert_eq!(dec.received(), 8);
        // The CRLF after the data is consumed; the bad size byte at offset 10 is not.
        let e = dec.decode(b"\r\nzz").unwrap_err();
        assert_eq!(e, Http1Error::BadChunkSize { offset: 10, byte: b'z' });
        assert_eq!(dec.received(), 10);
        let mut dec = BodyDecoder::new(BodyKind::Chunked);
        dec.decode(b"2\r\nab").unwrap();
        let e = dec.decode(b"\rX").unwrap_err();
        assert!(matches!(e, Http1Error::BadChunk { offset: 6, .. }), "{e:?}");
        assert_eq!(dec.received(), 6, "the CR before the bad byte was consumed");
    }

    #[test]
    fn chunk_extension_bound_is_exact() {
        let at_limit = [&b"1;"[..], &vec![b'e'; MAX_CHUNK_EXTENSION], b"\r\nx\r\n0\r\n\r\n"].concat();
        assert_eq!(run(BodyKind::Chunked, &[&at_limit], true).result, Ok(()));
        let over = [&b"1;"[..], &vec![b'e'; MAX_CHUNK_EXTENSION + 1], b"\r\nx\r\n0\r\n\r\n"].concat();
        let err = run(BodyKind::Chunked, &[&over], true).result.unwrap_err();
        assert!(err.to_string().contains("chunk extension longer than"), "{err}");
    }

    #[test]
    fn control_bytes_in_extensions_are_refused_but_tab_and_space_pass() {
        for ok in [&b"1;a\tb c\r\nx\r\n0\r\n\r\n"[..], b"1;~\r\nx\r\n0\r\n\r\n"] {
            assert_eq!(
                run(BodyKind::Chunked, &[ok], true).result,
                Ok(()),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [0x00u8, 0x1f, 0x7f] {
            let input = [&b"1;a"[..], &[bad], b"\r\nx\r\n0\r\n\r\n"].concat();
            let err = run(BodyKind::Chunked, &[&input], true).result.unwrap_err();
            assert!(err.to_string().contains("control byte"), "{bad:#x}: {err}");
        }
    }

    #[test]
    fn trailer_bound_is_exact() {
        let body = b"0\r\nAb: cd\r\n\r\n"; // counted: the line and its CR, "Ab: cd\r": 7 bytes
        let dec = |limit| {
            let mut d = BodyDecoder::new(BodyKind::Chunked).with_max_trailers(limit);
            d.decode(body).map(|_| d.trailers().to_vec())
        };
        assert_eq!(dec(7), Ok(vec![trailer("Ab", "cd")]));
        assert!(dec(6).unwrap_err().to_string().contains("trailer section longer than 6 bytes"));
    }

    #[test]
    fn payload_received_expected_and_remaining_are_counted_apart() {
        let mut d = BodyDecoder::new(BodyKind::Chunked);
        let input = b"3\r\nabc\r\n0\r\n\r\n";
        let mut used = 0;
        while !d.is_complete() {
            used += d.decode(&input[used..]).unwrap().consumed;
        }
        assert_eq!((d.payload(), d.received(), d.expected(), d.remaining()), (3, 13, None, None));
        let mut d = BodyDecoder::new(BodyKind::Length(10));
        d.decode(b"abcd").unwrap();
        assert_eq!((d.payload(), d.received(), d.expected(), d.remaining()), (4, 4, Some(10), Some(6)));
        let d = BodyDecoder::new(BodyKind::Empty);
        assert_eq!((d.expected(), d.remaining(), d.is_complete()), (Some(0), Some(0), true));
        let mut d = BodyDecoder::new(BodyKind::UntilClose);
        assert!(!d.is_complete());
        assert_eq!(d.decode(b"xyz").unwrap().consumed, 3);
        assert_eq!((d.expected(), d.remaining()), (None, None));
        assert_eq!(d.finish(), Ok(()));
        assert!(d.is_complete());
        assert_eq!(d.decode(b"more").unwrap().consumed, 0, "nothing after the close");
    }

    #[test]
    fn truncation_says_where_the_chunked_body_stopped() {
        let detail = |input: &[u8]| match run(BodyKind::Chunked, &[input], true).result {
            Err(Http1Error::Truncated { detail, received, .. }) => (detail, received),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        };
        assert_eq!(detail(b"5\r\nhel"), ("closed in chunk data with 2 bytes of the chunk missing".into(), 6));
        assert_eq!(detail(b"5\r\nhello"), ("closed before the last chunk".into(), 8));
        assert_eq!(detail(b"5\r\nhello\r"), ("closed before the last chunk".into(), 9));
        assert_eq!(detail(b""), ("closed before the last chunk".into(), 0));
        for cut in [&b"5"[..], b"5 ", b"5;e", b"5\r"] {
            assert_eq!(detail(cut).0, "closed in a chunk size line", "{:?}", String::from_utf8_lossy(cut));
        }
        let short = run(BodyKind::Length(5), &[b"abc"], true).result.unwrap_err();
        assert_eq!(short, Http1Error::Truncated { received: 3, expected: Some(5), detail: String::new() });
    }

    #[test]
    fn the_documented_limits_are_16_kib_of_extensions_and_256_kib_of_trailers() {
        // The README states these numbers; check them through behaviour, not the constants.
        let ext = |n: usize| {
            let input = [&b"1;"[..], &vec![b'e'; n], b"\r\nx\r\n0\r\n\r\n"].concat();
            run(BodyKind::Chunked, &[&input], true).result
        };
        assert_eq!(ext(16 * 1024), Ok(()));
        assert!(ext(16 * 1024 + 1).is_err());
        let trailers = |n: usize| {
            let input = [&b"0\r\nX: "[..], &vec![b'v'; n - 4], b"\r\n\r\n"].concat();
            run(BodyKind::Chunked, &[&input], true).result
        };
        assert_eq!(trailers(256 * 1024), Ok(()));
        assert!(trailers(256 * 1024 + 1).is_err());
    }
}
