//! Fuzz the PROXY protocol receiver (`serve --proxy-protocol`): no panic on
//! any bytes, never a byte read past the header, at most MAX_HEADER bytes
//! taken, and the framed header parses the same way on its own.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tcpkit::serve::proxy::{MAX_HEADER, default_trusted, parse, read_header};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

fuzz_target!(|input: &[u8]| {
    let mut rest = input;
    let peer = std::net::IpAddr::from([127, 0, 0, 1]);
    let result = runtime().block_on(read_header(&mut rest, peer, &default_trusted()));
    if let Ok(proxied) = result {
        let taken = &input[..input.len() - rest.len()];
        assert!(taken.len() <= MAX_HEADER);
        assert_eq!(parse(taken), Ok(proxied));
    }
});
