//! The socket layer every command uses: connecting (Happy Eyeballs), listening
//! (socket2 options), TLS configurations and the few socket options the standard
//! library and socket2 do not offer, and the PROXY protocol header that
//! precedes a connection's bytes ([`proxy`]).
//!
//! Not for: application protocols. Nothing here reads or writes application bytes.

pub mod connect;
pub mod error;
pub mod listen;
pub mod proxy;
pub mod sys;
pub mod tls;
pub mod trace;

pub use connect::{ConnectError, ConnectOptions, Connected, Family, connect};
pub use error::{IoClass, classify};
pub use listen::{ListenError, bind_listener, raise_open_file_limit};

/// The tokio runtime every command runs on: `threads` 0 or 1 is a
/// current-thread runtime (one thread, no cross-thread wake-ups: what connect,
/// fetch and each serve worker want), more is a multi-threaded one with that
/// many workers (bench with `--threads`). IO and timers are enabled.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}
