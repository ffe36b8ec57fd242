//! A second load generator for the hello protocol, written the plain way, to
//! cross-check `tcpkit bench`: C connections, each reads the greeting, then sends
//! `client<C>-<seq>\n` and awaits `Hello, client<C>-<seq>!\n` in a closed loop for
//! the given seconds. Replies are checked; it prints one line:
//! `replies=N errors=E seconds=S rate=R`.
//!
//! Usage: `cargo run --release --example plain_tokio_client -- ADDR CONNECTIONS SECONDS`
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:9999".to_string());
    let conns: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let secs: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5.0);
    // Connect everyone first, then start the clock, as tcpkit bench does.
    let mut streams = Vec::new();
    for _ in 0..conns {
        match TcpStream::connect(&addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                streams.push(s);
            }
            Err(e) => eprintln!("connect: {e}"),
        }
    }
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (id, stream) in streams.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (reader, mut writer) = stream.into_split();
            let mut reader = BufReader::new(reader);
            let mut line = Vec::new();
            let (mut ok, mut bad) = (0u64, 0u64);
            if reader.read_until(b'\n', &mut line).await.is_err() || line != b"Welcome!\n" {
                return (0, 1);
            }
            let mut seq = 0u64;
            while Instant::now() < end {
                let name = format!("client{id}-{seq}");
                seq += 1;
                if writer.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                    bad += 1;
                    break;
                }
                line.clear();
                match tokio::time::timeout(Duration::from_secs(10), reader.read_until(b'\n', &mut line)).await
                {
                    Ok(Ok(n)) if n > 0 && line == format!("Hello, {name}!\n").as_bytes() => ok += 1,
                    _ => {
                        bad += 1;
                        break;
                    }
                }
            }
            (ok, bad)
        }));
    }
    let (mut ok, mut bad) = (0u64, 0u64);
    for t in tasks {
        if let Ok((o, b)) = t.await {
            ok += o;
            bad += b;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Replies counted up to the end of the window; the last one per connection may
    // land just after it, which is at most CONNECTIONS extra replies.
    println!("replies={ok} errors={bad} seconds={elapsed:.3} rate={:.1}", ok as f64 / secs);
}
