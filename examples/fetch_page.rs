//! The tutorial's web client in plain Rust: send `GET` by hand over a
//! `std::net::TcpStream`, read the response until the server closes, print the
//! head and save the body to a file.
//!
//! ```sh
//! cargo run --example fetch_page -- HOST [PORT [PATH [OUTPUT]]]
//! cargo run --example fetch_page -- 127.0.0.1 8080 /index.html page.html
//! ```
//!
//! PORT defaults to 80, PATH to `/`, OUTPUT to `page.html`. Plain HTTP only.
//! Where the tutorial's version goes wrong, this one says why in a comment:
//! a response without a blank line, a body cut short, a chunked body.
//! `tcpkit fetch` does all of it properly: streaming, TLS, redirects, resume.
use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

/// The whole response is held in memory, so its size is capped.
const MAX_RESPONSE: u64 = 64 * 1024 * 1024;

/// A silent server ends the fetch after this long instead of hanging it forever.
const TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("fetch_page: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some(host) = args.first() else {
        return Err("usage: fetch_page HOST [PORT [PATH [OUTPUT]]]".to_string());
    };
    // Accept an IPv6 literal with or without its URL-style brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = match args.get(1) {
        Some(p) => p.parse().map_err(|_| format!("not a port number: {p}"))?,
        None => 80,
    };
    let path = args.get(2).map_or("/", String::as_str);
    let output = args.get(3).map_or("page.html", String::as_str);
    // The path goes into the request line as is: a space or a line break in it
    // would change the request's meaning.
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err(format!("the path must start with / and hold no spaces or control bytes: {path:?}"));
    }

    // Connect: the standard library resolves the name and tries each address.
    let mut stream =
        TcpStream::connect((host, port)).map_err(|e| format!("cannot connect to {host} port {port}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;

    // The request is plain text: a request line, headers, and an empty line.
    // `Connection: close` asks the server to close after the response, so
    // "read until EOF" reads exactly one response.
    let host_header = match (host.contains(':'), port) {
        (true, 80) => format!("[{host}]"), // an IPv6 literal needs brackets here
        (true, _) => format!("[{host}]:{port}"),
        (false, 80) => host.to_string(),
        (false, _) => format!("{host}:{port}"),
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the request: {e}"))?;

    // Receive until the server closes (a read of 0 bytes), at most MAX_RESPONSE.
    let mut data = Vec::new();
    stream
        .take(MAX_RESPONSE + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("reading the response after {} bytes: {e}", data.len()))?;
    if data.len() as u64 > MAX_RESPONSE {
        return Err(format!("response larger than {MAX_RESPONSE} bytes"));
    }

    // The head ends at the first empty line. The tutorial's `split` crashes when
    // there is none (a server that closed early, or not HTTP at all).
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!("no complete response head in {} bytes", data.len()));
    };
    let head = String::from_utf8_lossy(&data[..end]);
    let raw_body = &data[end + 4..];
    println!("{head}");

    // EOF alone does not prove the body is complete. HTTP/1.1 says how long it
    // is: a Content-Length, or chunks ending with a zero-size one.
    let body = if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(raw_body)?
    } else if let Some(length) = header(&head, "content-length") {
        let length: usize = length.parse().map_err(|_| format!("bad Content-Length: {length}"))?;
        if raw_body.len() < length {
            return Err(format!("body truncated: {} of {length} bytes", raw_body.len()));
        }
        raw_body[..length].to_vec()
    } else {
        raw_body.to_vec() // No length given: the body is whatever came before EOF.
    };

    fs::write(output, &body).map_err(|e| format!("writing {output}: {e}"))?;
    eprintln!("saved {} bytes to {output}", body.len());
    Ok(())
}

/// The value of the first header called `name` (names are case-insensitive).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    // Skip the status line; each header line is `Name: value`.
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Undo chunked transfer coding: `<hex size>\r\n<bytes>\r\n` repeated, ended by
/// a chunk of size 0 (trailers after it are ignored).
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or("chunked body cut in a size line")?;
        // A size may be followed by `;extensions`, which we do not need.
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size: {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        // The chunk's bytes and the `\r\n` after them must all be there.
        if data.len() < size || &data[size..data.len().min(size + 2)] != b"\r\n" {
            return Err(format!("chunked body cut inside a chunk of {size} bytes"));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
