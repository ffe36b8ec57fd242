//! The hello server as a newcomer to tokio writes it: a task per connection, a
//! `BufReader` with `read_until`, `write_all` per reply, no limits. It is the
//! baseline `tcpkit serve` is compared with in `bench/run` (not a design to copy:
//! an unbounded line buffer, two 8 KiB buffers per idle connection).
//!
//! Usage: `cargo run --release --example plain_tokio_server -- 127.0.0.1:9999`
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9999".to_string());
    let listener = TcpListener::bind(&addr).await?;
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(pair) => pair,
            // Out of descriptors and the like: try the next one.
            Err(_) => continue,
        };
        tokio::spawn(async move {
            let (reader, mut writer) = socket.into_split();
            let mut reader = BufReader::new(reader);
            if writer.write_all(b"Welcome!\n").await.is_err() {
                return;
            }
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line.ends_with(b"\n") {
                    line.pop();
                }
                if line.ends_with(b"\r") {
                    line.pop();
                }
                if line == b"exit" {
                    return;
                }
                let mut reply = b"Hello, ".to_vec();
                reply.extend_from_slice(&line);
                reply.extend_from_slice(b"!\n");
                if writer.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
    }
}
