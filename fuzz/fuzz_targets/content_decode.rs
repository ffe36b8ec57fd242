//! Fuzz the content decoders (gzip, deflate, br, zstd, stacked): no panic on any bytes,
//! and output handed on in bounded pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tcpkit::fetch::decode::{ContentDecoder, OUT_BUF};

/// Counts output and stops a bomb after 64 MiB, so one run stays short.
struct Sink(u64);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        assert!(buf.len() <= OUT_BUF);
        self.0 += buf.len() as u64;
        if self.0 > 64 << 20 {
            return Err(std::io::ErrorKind::FileTooLarge.into());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CODINGS: [&str; 6] = ["gzip", "deflate", "br", "zstd", "gzip, br", "deflate, zstd"];

fuzz_target!(|input: &[u8]| {
    let [which, split, data @ ..] = input else { return };
    let coding = CODINGS[usize::from(*which) % CODINGS.len()];
    let Ok(mut decoder) = ContentDecoder::new(Some(coding.as_bytes())) else { return };
    let k = usize::from(*split) * data.len() / 255;
    let mut sink = Sink(0);
    let _ = decoder
        .write(&data[..k], &mut sink)
        .and_then(|()| decoder.write(&data[k..], &mut sink))
        .and_then(|()| decoder.finish(&mut sink));
});
