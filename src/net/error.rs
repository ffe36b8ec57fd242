//! One classification of socket I/O errors, so every command names the same
//! failure the same way (a reset is a reset whether `connect`, `fetch` or
//! `bench` saw it) and picks its exit code from the class, not from raw kinds.
//!
//! Not for: messages or exit codes. Each command words its own error and
//! chooses its own code from the class.
use std::io;

/// What an I/O error on a socket means for the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoClass {
    /// The peer reset or aborted the connection (ECONNRESET, ECONNABORTED).
    Reset,
    /// The peer closed and refuses more bytes (EPIPE): it stopped reading.
    BrokenPipe,
    /// The connection timed out (retransmissions or keep-alive gave up), or a
    /// deadline of ours passed.
    TimedOut,
    /// Nobody listens at the address (ECONNREFUSED).
    Refused,
    /// No route to the host or network, or the address cannot be used here.
    Unreachable,
    /// Anything else.
    Other,
}

/// The class of `err`.
pub fn classify(err: &io::Error) -> IoClass {
    use io::ErrorKind as K;
    match err.kind() {
        K::ConnectionReset | K::ConnectionAborted => IoClass::Reset,
        K::BrokenPipe => IoClass::BrokenPipe,
        K::TimedOut => IoClass::TimedOut,
        K::ConnectionRefused => IoClass::Refused,
        K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable | K::NetworkDown => {
            IoClass::Unreachable
        }
        _ => IoClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_lands_in_its_class() {
        use io::ErrorKind as K;
        for (kind, class) in [
            (K::ConnectionReset, IoClass::Reset),
            (K::ConnectionAborted, IoClass::Reset),
            (K::BrokenPipe, IoClass::BrokenPipe),
            (K::TimedOut, IoClass::TimedOut),
            (K::ConnectionRefused, IoClass::Refused),
            (K::HostUnreachable, IoClass::Unreachable),
            (K::NetworkUnreachable, IoClass::Unreachable),
            (K::AddrNotAvailable, IoClass::Unreachable),
            (K::UnexpectedEof, IoClass::Other),
            (K::PermissionDenied, IoClass::Other),
        ] {
            assert_eq!(classify(&kind.into()), class, "{kind:?}");
        }
        // Raw OS errors classify by their kind too.
        assert_eq!(classify(&io::Error::from_raw_os_error(libc::ECONNRESET)), IoClass::Reset);
        assert_eq!(classify(&io::Error::from_raw_os_error(libc::ETIMEDOUT)), IoClass::TimedOut);
    }
}
