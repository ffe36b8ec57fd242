//! Fuzz the body decoder (chunked, Content-Length, until close): no panic, progress on
//! every call, payload within what was consumed, and the same outcome for the input
//! whole and cut at fuzzer-chosen points.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tcpkit::fetch::http1::{BodyDecoder, BodyKind, Http1Error};

#[derive(Debug, PartialEq)]
struct Outcome {
    body: Vec<u8>,
    rest: usize,
    received: u64,
    trailers: Vec<(String, Vec<u8>)>,
    result: Result<(), Http1Error>,
}

fn run(kind: BodyKind, pieces: &[&[u8]]) -> Outcome {
    let mut dec = BodyDecoder::new(kind).with_max_trailers(1024);
    let (mut body, mut rest) = (Vec::new(), 0);
    let mut result = Ok(());
    'feed: for piece in pieces {
        let mut input = *piece;
        while !input.is_empty() {
            if dec.is_complete() {
                rest += input.len();
                continue 'feed;
            }
            match dec.decode(input) {
                Ok(d) => {
                    assert!(d.consumed > 0 && d.consumed <= input.len() && d.data.len() <= d.consumed);
                    body.extend_from_slice(d.data);
                    input = &input[d.consumed..];
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    result = Err(e);
                    break 'feed;
                }
            }
        }
    }
    if result.is_ok() {
        result = dec.finish();
    }
    Outcome { body, rest, received: dec.received(), trailers: dec.trailers().to_vec(), result }
}

fuzz_target!(|input: &[u8]| {
    let [mode, a, b, data @ ..] = input else { return };
    let kind = match mode % 4 {
        0 | 1 => BodyKind::Chunked,
        2 => BodyKind::Length(u64::from(u16::from_le_bytes([*a, *b]))),
        _ => BodyKind::UntilClose,
    };
    let whole = run(kind, &[data]);
    let i = usize::from(*a) * data.len() / 255;
    let j = i.max(usize::from(*b) * data.len() / 255);
    let cut = run(kind, &[&data[..i], &data[i..j], &data[j..]]);
    assert_eq!(cut, whole, "cut at {i} and {j}");
});
