//! The request body: bytes in memory, or a file streamed in [`UPLOAD_CHUNK`] pieces so a
//! large upload costs no memory.
//!
//! Not for: choosing the method or the headers (`policy`), or reading `-d @FILE` (the
//! CLI reads form data into memory, as curl does).
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use tokio::io::AsyncWriteExt;

use super::error::FetchError;
use super::stream::Stream;

/// Bytes read from a body file per write to the socket.
pub const UPLOAD_CHUNK: usize = 64 * 1024;

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Sent as is.
    Bytes(Vec<u8>),
    /// Streamed from `path`, exactly `len` bytes (its size when the transfer was set up).
    File {
        /// The file.
        path: PathBuf,
        /// The bytes announced in Content-Length.
        len: u64,
    },
}

impl Body {
    /// The body's length, for Content-Length.
    pub fn len(&self) -> u64 {
        match self {
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A body streamed from `path`, which must be a regular file.
    pub fn file(path: PathBuf) -> Result<Body, FetchError> {
        let meta =
            std::fs::metadata(&path).map_err(|source| FetchError::ReadFile { path: path.clone(), source })?;
        if !meta.is_file() {
            return Err(FetchError::ReadFile { path, source: std::io::Error::other("not a regular file") });
        }
        Ok(Body::File { path, len: meta.len() })
    }
}

/// Send a file body after the head (a `Bytes` body went out with the head): exactly
/// the length announced, read in [`UPLOAD_CHUNK`] pieces.
pub async fn send_file_body(stream: &mut Stream, body: &Body) -> Result<(), FetchError> {
    let Body::File { path, len } = body else { return Ok(()) };
    let fail = |source| FetchError::ReadFile { path: path.clone(), source };
    let mut file = File::open(path).map_err(fail)?;
    let mut chunk = vec![0u8; UPLOAD_CHUNK];
    let mut left = *len;
    while left > 0 {
        let want = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
        let n = file.read(&mut chunk[..want]).map_err(fail)?;
        if n == 0 {
            return Err(fail(std::io::Error::other(format!(
                "file shrank: {left} of {len} bytes left to send"
            ))));
        }
        stream.write_all(&chunk[..n]).await.map_err(FetchError::Send)?;
        left -= n as u64;
    }
    Ok(())
}
