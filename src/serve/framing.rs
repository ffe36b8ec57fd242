//! A bounded line framer on bytes.
//!
//! Lines end at `\n`; a `\r` just before it is dropped. Complete lines are handed
//! to a callback as slices, straight out of the bytes just read when nothing is
//! buffered (the common case: no copy), else out of the framer's own buffer,
//! which holds only a partial line or the lines left after a pause and is freed
//! as soon as it is empty, so an idle connection holds no buffer.
//!
//! Bounded: a line longer than the limit is an error value, detected as soon as
//! the partial line passes the limit, so the buffer never exceeds the limit plus
//! one read. Not for: what a line means (see `protocol`).
use thiserror::Error;

/// What the line callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Hand over the next line.
    Continue,
    /// Stop for now (output is full); the rest stays buffered for [`Framer::resume`].
    Pause,
    /// Stop for good (the quit word); nothing more is wanted.
    Stop,
}

/// A line passed the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("line too long: more than {limit} bytes")]
pub struct LineTooLong {
    /// The limit in bytes, line ending excluded.
    pub limit: usize,
}

/// Splits a byte stream into lines of at most `max_line` bytes.
#[derive(Debug)]
pub struct Framer {
    /// Bytes received but not yet handed over: a partial line, or lines left
    /// after a pause. At most `max_line + 1` bytes plus one read.
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no `\n` (so a long line arriving in
    /// small pieces is scanned once, not once per piece).
    scanned: usize,
    /// Longest line accepted, without its line ending.
    max_line: usize,
}

impl Framer {
    /// A framer accepting lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Framer { buf: Vec::new(), scanned: 0, max_line }
    }

    /// Bytes held: received, not yet handed over.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of memory held by the buffer.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Feed bytes just received, handing each complete line to `on_line`.
    pub fn push(
        &mut self,
        input: &[u8],
        on_line: &mut impl FnMut(&[u8]) -> Flow,
    ) -> Result<Flow, LineTooLong> {
        if self.buf.is_empty() {
            let (used, flow) = split_lines(input, 0, self.max_line, on_line)?;
            let rest = &input[used..];
            if flow == Flow::Continue {
                check_partial(rest, self.max_line)?;
                self.scanned = rest.len();
            } else {
                self.scanned = 0;
            }
            if flow != Flow::Stop {
                self.buf.extend_from_slice(rest);
            }
            return Ok(flow);
        }
        self.buf.extend_from_slice(input);
        self.resume(on_line)
    }

    /// Hand over the lines kept after a [`Flow::Pause`].
    pub fn resume(&mut self, on_line: &mut impl FnMut(&[u8]) -> Flow) -> Result<Flow, LineTooLong> {
        let (used, flow) = split_lines(&self.buf, self.scanned, self.max_line, on_line)?;
        self.buf.drain(..used);
        if flow == Flow::Continue {
            check_partial(&self.buf, self.max_line)?;
            self.scanned = self.buf.len();
        } else {
            self.scanned = 0;
        }
        if self.buf.is_empty() || flow == Flow::Stop {
            // Free the memory: an idle connection holds no buffer.
            self.buf = Vec::new();
            self.scanned = 0;
        }
        Ok(flow)
    }

    /// Whether the buffer holds a complete line (lines left after a pause).
    pub fn has_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.scanned.min(self.buf.len())..]).is_some()
    }

    /// At end of input: hand over the lines still held, then the final line that
    /// has no `\n` (if any bytes remain).
    pub fn finish(&mut self, on_line: &mut impl FnMut(&[u8]) -> Flow) -> Result<Flow, LineTooLong> {
        let flow = self.resume(on_line)?;
        if flow != Flow::Continue || self.buf.is_empty() {
            return Ok(flow);
        }
        let last = std::mem::take(&mut self.buf);
        self.scanned = 0;
        if last.len() > self.max_line {
            return Err(LineTooLong { limit: self.max_line });
        }
        Ok(on_line(&last))
    }
}

/// Hand over complete lines of `data`, searching for `\n` from `scan_from`
/// (earlier bytes hold none). Returns the bytes used and why it stopped.
fn split_lines(
    data: &[u8],
    scan_from: usize,
    max_line: usize,
    on_line: &mut impl FnMut(&[u8]) -> Flow,
) -> Result<(usize, Flow), LineTooLong> {
    let mut start = 0;
    let mut scan = scan_from.min(data.len());
    while let Some(i) = memchr::memchr(b'\n', &data[scan..]) {
        let end = scan + i;
        let mut line = &data[start..end];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.len() > max_line {
            return Err(LineTooLong { limit: max_line });
        }
        start = end + 1;
        scan = start;
        match on_line(line) {
            Flow::Continue => {}
            flow => return Ok((start, flow)),
        }
    }
    Ok((start, Flow::Continue))
}

/// A partial line may hold `max_line` bytes plus a `\r` that a `\n` may follow.
fn check_partial(rest: &[u8], max_line: usize) -> Result<(), LineTooLong> {
    let over = match rest.len().checked_sub(max_line) {
        None | Some(0) => false,
        Some(1) => rest.last() != Some(&b'\r'),
        Some(_) => true,
    };
    if over { Err(LineTooLong { limit: max_line }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `chunks` one by one, then end the input; return the lines and how it ended.
    fn run(max: usize, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Result<Flow, LineTooLong>) {
        let mut lines = Vec::new();
        let mut f = Framer::new(max);
        let mut on_line = |l: &[u8]| {
            lines.push(l.to_vec());
            if l == b"exit" { Flow::Stop } else { Flow::Continue }
        };
        for c in chunks {
            match f.push(c, &mut on_line) {
                Ok(Flow::Continue) => {}
                other => return (lines, other),
            }
        }
        let end = f.finish(&mut on_line);
        (lines, end)
    }

    fn all_splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut out = vec![vec![input], input.chunks(1).collect()];
        for i in 0..=input.len() {
            for j in i..=input.len() {
                out.push(vec![&input[..i], &input[i..j], &input[j..]]);
            }
        }
        out
    }

    #[test]
    fn every_split_gives_the_same_lines() {
        let input = b"Michael\nTracy\r\n\n\0\xff\r\nSarah";
        let whole = run(64, &[input]);
        assert_eq!(
            whole.0,
            vec![b"Michael".to_vec(), b"Tracy".to_vec(), b"".to_vec(), b"\0\xff".to_vec(), b"Sarah".to_vec()]
        );
        for split in all_splits(input) {
            assert_eq!(run(64, &split), whole, "split {split:?}");
        }
    }

    #[test]
    fn stop_drops_what_follows() {
        for split in all_splits(b"a\nexit\nb\n") {
            let (lines, end) = run(64, &split);
            assert_eq!(lines, vec![b"a".to_vec(), b"exit".to_vec()]);
            assert_eq!(end, Ok(Flow::Stop));
        }
    }

    #[test]
    fn line_exactly_at_the_limit_passes_and_one_over_fails() {
        for split in all_splits(b"abcd\r\nabcd\nabcd") {
            let (lines, end) = run(4, &split);
            assert_eq!(lines.len(), 3, "{split:?}");
            assert_eq!(end, Ok(Flow::Continue));
        }
        for input in [&b"abcde\n"[..], b"abcde", b"abcd\r\r\n", b"ok\nabcdefghij"] {
            for split in all_splits(input) {
                assert_eq!(run(4, &split).1, Err(LineTooLong { limit: 4 }), "{split:?}");
            }
        }
    }

    #[test]
    fn memory_stays_bounded_without_a_newline() {
        let mut f = Framer::new(100);
        let mut never = |_: &[u8]| -> Flow { unreachable!("no complete line") };
        let mut result = Ok(Flow::Continue);
        for _ in 0..1000 {
            result = f.push(&[b'x'; 7], &mut never);
            if result.is_err() {
                break;
            }
            assert!(f.buffered() <= 101);
        }
        assert_eq!(result, Err(LineTooLong { limit: 100 }));
    }

    #[test]
    fn pause_keeps_the_rest_for_resume() {
        let mut f = Framer::new(64);
        let mut seen = Vec::new();
        let flow = f
            .push(b"a\nb\nc", &mut |l| {
                seen.push(l.to_vec());
                Flow::Pause
            })
            .unwrap();
        assert_eq!(flow, Flow::Pause);
        assert_eq!(seen, vec![b"a".to_vec()]);
        assert!(f.has_line());
        let flow = f
            .resume(&mut |l| {
                seen.push(l.to_vec());
                Flow::Continue
            })
            .unwrap();
        assert_eq!(flow, Flow::Continue);
        assert!(!f.has_line());
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(f.buffered(), 1);
    }

    #[test]
    fn idle_framer_holds_no_memory() {
        let mut f = Framer::new(64);
        f.push(b"partial", &mut |_| Flow::Continue).unwrap();
        assert!(f.capacity() > 0);
        f.push(b" line\n", &mut |_| Flow::Continue).unwrap();
        assert_eq!(f.capacity(), 0);
    }

    #[test]
    fn a_long_line_in_one_byte_pieces_is_scanned_once() {
        // 64 KiB in single bytes: quadratic rescanning would take seconds here.
        let mut f = Framer::new(1 << 16);
        let mut n = 0;
        for _ in 0..(1 << 16) {
            f.push(b"y", &mut |_| Flow::Continue).unwrap();
        }
        f.push(b"\n", &mut |l| {
            n = l.len();
            Flow::Continue
        })
        .unwrap();
        assert_eq!(n, 1 << 16);
    }

    // Tests that kill the mutants scripts/mutants found alive (see TESTING.md).

    #[test]
    fn buffered_and_capacity_count_the_partial_line_exactly() {
        let mut f = Framer::new(100);
        let mut lines = 0;
        f.push(b"abc", &mut |_| {
            lines += 1;
            Flow::Continue
        })
        .unwrap();
        assert_eq!(f.buffered(), 3);
        assert!(f.capacity() >= 3);
        f.push(b"de\nfgh", &mut |_| {
            lines += 1;
            Flow::Continue
        })
        .unwrap();
        assert_eq!((lines, f.buffered()), (1, 3));
    }

    #[test]
    fn finish_on_an_empty_buffer_hands_over_no_empty_line() {
        let mut f = Framer::new(10);
        let mut seen = Vec::new();
        let mut on_line = |l: &[u8]| {
            seen.push(l.to_vec());
            Flow::Continue
        };
        f.push(b"a\n", &mut on_line).unwrap();
        assert_eq!(f.finish(&mut on_line), Ok(Flow::Continue));
        assert_eq!(seen, vec![b"a".to_vec()]);
        let mut fresh = Framer::new(10);
        let mut called = false;
        assert_eq!(
            fresh.finish(&mut |_| {
                called = true;
                Flow::Continue
            }),
            Ok(Flow::Continue)
        );
        assert!(!called, "no line at all in an empty stream");
    }

    #[test]
    fn finish_after_stop_hands_over_nothing_more() {
        let mut f = Framer::new(10);
        let mut seen = Vec::new();
        let flow = f
            .push(b"exit\nrest", &mut |l: &[u8]| {
                seen.push(l.to_vec());
                if l == b"exit" { Flow::Stop } else { Flow::Continue }
            })
            .unwrap();
        assert_eq!(flow, Flow::Stop);
        assert_eq!(f.buffered(), 0);
        assert_eq!(seen, vec![b"exit".to_vec()]);
    }

    #[test]
    fn has_line_tells_whether_a_paused_buffer_holds_a_whole_line() {
        let mut f = Framer::new(10);
        assert!(!f.has_line());
        f.push(b"a\nb\nc", &mut |_| Flow::Pause).unwrap();
        assert!(f.has_line(), "b is complete");
        f.resume(&mut |_| Flow::Pause).unwrap();
        assert!(!f.has_line(), "only the partial c is left");
        assert_eq!(f.buffered(), 1);
    }

    #[test]
    fn a_partial_line_of_the_limit_plus_a_cr_waits_but_plus_another_byte_fails() {
        let mut f = Framer::new(3);
        assert_eq!(f.push(b"abc\r", &mut |_| Flow::Continue), Ok(Flow::Continue));
        let mut g = Framer::new(3);
        assert_eq!(g.push(b"abcd", &mut |_| Flow::Continue), Err(LineTooLong { limit: 3 }));
        let mut h = Framer::new(3);
        assert_eq!(h.push(b"abc\rx", &mut |_| Flow::Continue), Err(LineTooLong { limit: 3 }));
        // The same through the buffered path: a piece already held, then more.
        let mut k = Framer::new(3);
        k.push(b"ab", &mut |_| Flow::Continue).unwrap();
        assert_eq!(k.push(b"c\r", &mut |_| Flow::Continue), Ok(Flow::Continue));
        assert_eq!(k.push(b"x", &mut |_| Flow::Continue), Err(LineTooLong { limit: 3 }));
    }

    #[test]
    fn final_line_without_newline_over_the_limit_is_refused_at_finish() {
        let mut f = Framer::new(3);
        f.push(b"abc\r", &mut |_| Flow::Continue).unwrap();
        assert_eq!(f.finish(&mut |_| Flow::Continue), Err(LineTooLong { limit: 3 }));
        let mut g = Framer::new(3);
        g.push(b"abc", &mut |_| Flow::Continue).unwrap();
        let mut last = Vec::new();
        assert_eq!(
            g.finish(&mut |l: &[u8]| {
                last = l.to_vec();
                Flow::Stop
            }),
            Ok(Flow::Stop)
        );
        assert_eq!(last, b"abc");
    }

    #[test]
    fn the_error_names_its_limit() {
        assert_eq!(LineTooLong { limit: 7 }.to_string(), "line too long: more than 7 bytes");
    }
}
