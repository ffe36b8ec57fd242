//! The tutorial's hello server in plain Rust (std only, one thread per connection).
//!
//! Every client is greeted with `Welcome!`; each line it sends is answered with
//! `Hello, <line>!`; the line `exit` (or the client closing) ends the
//! conversation. Run it, then talk to it from another terminal:
//!
//! ```sh
//! cargo run --example hello_server                  # listens on 127.0.0.1:9999
//! cargo run --example hello_server -- [::1]:7000    # or any address
//! printf 'Michael\nTracy\nexit\n' | cargo run -- connect 127.0.0.1 9999
//! ```
//!
//! `tcpkit serve` speaks the same bytes, with what a real server needs on top:
//! async I/O instead of a thread per client, connection limits, graceful shutdown.
use std::env;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

/// Longest line we accept. Without a limit, a client that never sends `\n`
/// would make us buffer without end.
const MAX_LINE: usize = 64 * 1024;

/// A client silent for this long is disconnected, so it cannot hold a thread forever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

fn main() -> ExitCode {
    let addr = env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9999".to_string());
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("hello_server: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("Waiting for connections on {addr}...");
    // `incoming()` accepts forever: each item is a new connection or an error.
    for stream in listener.incoming() {
        match stream {
            // A thread of its own per client, as in the tutorial: simple, but each
            // costs a stack, which is why `tcpkit serve` uses async tasks instead.
            Ok(stream) => {
                if let Err(e) = thread::Builder::new().spawn(move || handle(stream)) {
                    eprintln!("cannot start a thread: {e}");
                }
            }
            // Accept can fail (e.g. too many open files). Wait a little rather than
            // spin, and keep serving: one bad moment must not end the server.
            Err(e) => {
                eprintln!("accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    ExitCode::SUCCESS
}

/// Serve one client and log (on stderr, as servers do) its connection by the
/// 4-tuple that identifies it: our address and port, the client's address and port.
fn handle(stream: TcpStream) {
    let tuple = match (stream.local_addr(), stream.peer_addr()) {
        (Ok(local), Ok(peer)) => format!("{local} <- {peer}"),
        _ => "unknown".to_string(),
    };
    eprintln!("accepted {tuple}");
    match converse(&stream) {
        Ok(()) => eprintln!("closed {tuple}"),
        Err(e) => eprintln!("closed {tuple}: {e}"),
    }
    // Dropping `stream` here closes the connection.
}

/// The hello protocol itself. Lines are bytes, not necessarily UTF-8.
fn converse(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    // `&TcpStream` implements both Read and Write, so one socket serves as a
    // buffered reader and as a writer at the same time.
    let mut writer = stream;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"Welcome!\n")?;
    let mut line = Vec::new();
    loop {
        line.clear();
        // TCP is a byte stream, not a message stream: one read may hold half a
        // line or three lines. read_until collects bytes up to the `\n`;
        // `take` stops it at MAX_LINE + 1 bytes.
        let n = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(()); // The client closed its side: nothing more will come.
        }
        if line.len() > MAX_LINE {
            writer.write_all(format!("ERR line too long (limit {MAX_LINE} bytes)\n").as_bytes())?;
            return Ok(());
        }
        // Strip `\n` and a `\r` before it (telnet and Windows clients send `\r\n`).
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text == b"exit" {
            return Ok(());
        }
        // One write per reply: the parts assembled first.
        writer.write_all(&[b"Hello, ", text, b"!\n"].concat())?;
    }
}
