//! Zero-copy body path for plain HTTP: splice(2) moves a Content-Length body
//! from the socket into a pipe and from the pipe into the output file, so the
//! bytes never enter user space.
//!
//! Only for: a plain TCP socket, a known number of bytes, no content decoding,
//! a regular file (not opened with O_APPEND, which splice refuses). Everything
//! else takes the ordinary read/write loop.
use std::io;

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::sink::Sink;

/// Bytes asked of the kernel per splice; the pipe is enlarged to this when allowed
/// (else the default 64 KiB pipe bounds each move).
const PIPE_SIZE: usize = 1 << 20;

/// Which side failed.
#[derive(Debug)]
pub enum SpliceError {
    /// The socket (exit 56).
    Read(io::Error),
    /// The file or the pipe (exit 23).
    Write(io::Error),
}

/// Move up to `remaining` bytes from `tcp` into the sink's file; stops early only
/// at EOF. Returns the bytes moved; `received` counts them as they arrive (for -m's message).
pub async fn socket_to_file(
    tcp: &TcpStream,
    sink: &mut Sink,
    mut remaining: u64,
    received: &mut u64,
) -> Result<u64, SpliceError> {
    let (pipe_r, pipe_w) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| SpliceError::Write(e.into()))?;
    // The default pipe (64 KiB) works too, only with more system calls.
    let capacity = fcntl_setpipe_size(&pipe_w, PIPE_SIZE).unwrap_or(64 * 1024);
    let mut moved = 0u64;
    while remaining > 0 {
        let want = usize::try_from(remaining).unwrap_or(usize::MAX).min(capacity);
        let n = loop {
            tcp.readable().await.map_err(SpliceError::Read)?;
            let res = tcp.try_io(Interest::READABLE, || {
                splice(tcp, None, &pipe_w, None, want, SpliceFlags::MOVE | SpliceFlags::NONBLOCK)
                    .map_err(io::Error::from)
            });
            match res {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(SpliceError::Read(e)),
            }
        };
        if n == 0 {
            break;
        }
        *received += n as u64;
        // Drain the pipe fully before the next read, so it never fills up.
        let mut left = n;
        while left > 0 {
            let Some(file) = sink.file_mut() else {
                return Err(SpliceError::Write(io::Error::other("splice needs a file")));
            };
            let m = splice(&pipe_r, None, &*file, None, left, SpliceFlags::MOVE)
                .map_err(|e| SpliceError::Write(e.into()))?;
            if m == 0 {
                return Err(SpliceError::Write(io::ErrorKind::WriteZero.into()));
            }
            left -= m;
        }
        sink.add_written(n as u64);
        moved += n as u64;
        remaining -= n as u64;
    }
    Ok(moved)
}
