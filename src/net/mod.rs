//! The socket layer every command uses: connecting (Happy Eyeballs), listening
//! (socket2 options), TLS configurations and the few socket options the standard
//! library and socket2 do not offer.
//!
//! Not for: protocols. Nothing here reads or writes application bytes.

pub mod connect;
pub mod error;
pub mod listen;
pub mod sys;
pub mod tls;
pub mod trace;

pub use connect::{ConnectError, ConnectOptions, Connected, Family, connect};
pub use error::{IoClass, classify};
pub use listen::{ListenError, bind_listener, raise_open_file_limit};
