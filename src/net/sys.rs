//! The one socket option neither the standard library, socket2 nor rustix offers:
//! `IP_BIND_ADDRESS_NO_PORT` (Linux), which lets a client bound to a source
//! address pick its port per destination at `connect` time, so many source
//! addresses can each reach more than 28,000 connections.
use std::io;
use std::os::fd::AsRawFd;

/// Set `IP_BIND_ADDRESS_NO_PORT` on `socket` (call before `bind`). On systems
/// without the option this returns `Unsupported` and the caller binds as usual.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn set_bind_address_no_port(socket: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `socket` is borrowed, so its fd stays open for the call; the option
    // value points to a live `c_int` on this stack frame and its exact size is
    // passed, which is what the kernel reads for this integer option.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// See the Linux version: the option does not exist here.
#[cfg(not(target_os = "linux"))]
pub fn set_bind_address_no_port(_socket: &impl AsRawFd) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Bytes waiting in the socket's kernel receive buffer (`FIONREAD`).
pub fn pending_bytes(socket: &impl std::os::fd::AsFd) -> io::Result<u64> {
    Ok(rustix::io::ioctl_fionread(socket)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_address_no_port_is_accepted_by_a_tcp_socket() {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_bind_address_no_port(&s).unwrap();
    }

    #[test]
    fn pending_bytes_counts_unread_data() {
        use std::io::Write;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        c.write_all(b"hello").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pending_bytes(&s).unwrap() < 5 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(pending_bytes(&s).unwrap(), 5);
    }
}
