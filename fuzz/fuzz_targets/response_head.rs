//! Fuzz the response head parser and the framing choice: no panic, bounded work, and
//! the same answer however the bytes are split (a prefix either needs more bytes or
//! gives exactly the answer for the whole input).
#![no_main]
use libfuzzer_sys::fuzz_target;
use tcpkit::fetch::http1::{body_kind, parse_response_head};

/// Small, so the fuzzer also reaches the too-large path.
const MAX_HEAD: usize = 4096;

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else { return };
    let whole = parse_response_head(data, MAX_HEAD);
    match &whole {
        Ok(Some((head, n))) => {
            assert!(*n <= data.len() && *n <= MAX_HEAD);
            for method in ["GET", "HEAD", "POST", "CONNECT"] {
                if let Err(e) = body_kind(method, head) {
                    assert!(!e.to_string().is_empty());
                }
            }
            let _ = head.header("content-length");
        }
        Ok(None) => assert!(data.len() < MAX_HEAD),
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
    // The first byte picks where the bytes are cut, as a read might cut them.
    let k = usize::from(split) * data.len() / 255;
    match parse_response_head(&data[..k], MAX_HEAD) {
        Ok(None) => {}
        prefix => assert_eq!(prefix, whole, "cut at {k}"),
    }
});
