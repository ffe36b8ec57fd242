//! Fuzz the server's line framer: no panic, memory bounded by the limit plus one
//! piece, lines never over the limit, and the same lines and verdict for the
//! input whole and cut at fuzzer-chosen points.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tcpkit::serve::framing::{Flow, Framer, LineTooLong};

fn run(max: usize, pieces: &[&[u8]]) -> (Vec<Vec<u8>>, Result<Flow, LineTooLong>) {
    let mut framer = Framer::new(max);
    let mut lines = Vec::new();
    let mut on_line = |l: &[u8]| {
        assert!(l.len() <= max, "line over the limit handed over");
        lines.push(l.to_vec());
        if l == b"exit" { Flow::Stop } else { Flow::Continue }
    };
    for piece in pieces {
        match framer.push(piece, &mut on_line) {
            Ok(Flow::Continue) => assert!(framer.buffered() <= max + 1, "buffer over the limit"),
            other => return (lines, other),
        }
    }
    let end = framer.finish(&mut on_line);
    (lines, end)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(data[0] % 32);
    let input = &data[3..];
    let (a, b) = (usize::from(data[1]) % (input.len() + 1), usize::from(data[2]) % (input.len() + 1));
    let (a, b) = (a.min(b), a.max(b));
    let whole = run(max, &[input]);
    let cut = run(max, &[&input[..a], &input[a..b], &input[b..]]);
    assert_eq!(whole, cut);
});
