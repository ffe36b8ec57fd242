//! What a workload sends and what it expects back, as bytes: the greeting, the
//! request line built from `--message`, the reply built from `--reply`, the quit
//! line. Pure functions, so every expectation is tested without a socket.
//!
//! Not for: timing, sockets or counting (see `conn.rs` and `stats.rs`).
use thiserror::Error;

use crate::cli::{BenchArgs, Workload};
use crate::serve::protocol::Template;

/// Longest request line a template may produce, in bytes; a sanity bound, since
/// each connection keeps its expected replies in memory.
pub const MAX_LINE: usize = 64 * 1024;

/// A `--message`, `--reply` or `--greeting` that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkloadError {
    /// A template contains a newline, which would split it into two lines.
    #[error("{what}: must not contain a newline")]
    Newline {
        /// Which flag.
        what: &'static str,
    },
    /// A template is longer than [`MAX_LINE`].
    #[error("{what}: {len} bytes is over the limit of {MAX_LINE}")]
    TooLong {
        /// Which flag.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Vec<u8>),
    Conn,
    Seq,
}

/// `--message`: literal text with `{conn}` and `{seq}` filled in per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    parts: Vec<Part>,
}

impl Message {
    /// Parse a template; `{conn}` and `{seq}` are placeholders, anything else is literal.
    pub fn parse(template: &str) -> Result<Self, WorkloadError> {
        check("--message", template)?;
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let next = [("{conn}", Part::Conn), ("{seq}", Part::Seq)]
                .into_iter()
                .filter_map(|(pat, part)| rest.find(pat).map(|i| (i, pat.len(), part)))
                .min_by_key(|(i, _, _)| *i);
            match next {
                Some((i, len, part)) => {
                    if i > 0 {
                        parts.push(Part::Lit(rest.as_bytes()[..i].to_vec()));
                    }
                    parts.push(part);
                    rest = &rest[i + len..];
                }
                None => {
                    parts.push(Part::Lit(rest.as_bytes().to_vec()));
                    rest = "";
                }
            }
        }
        Ok(Message { parts })
    }

    /// Append the line for request `seq` of connection `conn` (without newline).
    pub fn render(&self, conn: u64, seq: u64, out: &mut Vec<u8>) {
        use std::io::Write;
        for part in &self.parts {
            // Writing into a Vec cannot fail.
            let _ = match part {
                Part::Lit(b) => out.write_all(b),
                Part::Conn => write!(out, "{conn}"),
                Part::Seq => write!(out, "{seq}"),
            };
        }
    }
}

/// Everything a connection needs to know about its workload, as bytes.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Which workload.
    pub kind: Workload,
    /// The greeting line expected on connect, with its newline; empty = none.
    pub greeting: Vec<u8>,
    /// The request line.
    pub message: Message,
    /// The reply template, the same type `tcpkit serve` renders with.
    pub reply: Template,
    /// The quit line with its newline (`exit\n`).
    pub quit: Vec<u8>,
}

impl Spec {
    /// The workload the flags describe, with its defaults filled in.
    pub fn from_args(args: &BenchArgs) -> Result<Self, WorkloadError> {
        let kind = args.workload;
        let default_reply = if kind == Workload::Echo { "{}" } else { "Hello, {}!" };
        let default_greeting = if kind == Workload::Echo { "" } else { "Welcome!" };
        let reply = args.reply.as_deref().unwrap_or(default_reply);
        let greeting = args.greeting.as_deref().unwrap_or(default_greeting);
        check("--reply", reply)?;
        check("--greeting", greeting)?;
        check("--quit", &args.quit)?;
        let line = |s: &str| if s.is_empty() { Vec::new() } else { format!("{s}\n").into_bytes() };
        Ok(Spec {
            kind,
            greeting: line(greeting),
            message: Message::parse(&args.message)?,
            reply: Template::new(reply),
            quit: format!("{}\n", args.quit).into_bytes(),
        })
    }

    /// Append request `seq` of connection `conn` to `out` (newline included) and
    /// return the range of `out` holding the line itself.
    pub fn request(&self, conn: u64, seq: u64, out: &mut Vec<u8>) -> std::ops::Range<usize> {
        let start = out.len();
        self.message.render(conn, seq, out);
        let end = out.len();
        out.push(b'\n');
        start..end
    }

    /// Append the reply expected for `line` to `out`.
    pub fn reply(&self, line: &[u8], out: &mut Vec<u8>) {
        self.reply.render(line, out);
    }
}

fn check(what: &'static str, s: &str) -> Result<(), WorkloadError> {
    if s.contains('\n') {
        return Err(WorkloadError::Newline { what });
    }
    if s.len() > MAX_LINE {
        return Err(WorkloadError::TooLong { what, len: s.len() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn spec(args: &[&str]) -> Result<Spec, WorkloadError> {
        let mut argv = vec!["tcpkit", "bench", "127.0.0.1:1"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Bench(a) => Spec::from_args(&a),
            _ => unreachable!(),
        }
    }

    fn exchange(s: &Spec, conn: u64, seq: u64) -> (Vec<u8>, Vec<u8>) {
        let mut req = Vec::new();
        let line = s.request(conn, seq, &mut req);
        let mut reply = Vec::new();
        s.reply(&req[line], &mut reply);
        (req, reply)
    }

    #[test]
    fn hello_expects_the_greeting_and_hello_reply() {
        let s = spec(&[]).unwrap();
        assert_eq!(s.greeting, b"Welcome!\n");
        assert_eq!(exchange(&s, 3, 41), (b"client3-41\n".to_vec(), b"Hello, client3-41!\n".to_vec()));
        assert_eq!(s.quit, b"exit\n");
    }

    #[test]
    fn echo_expects_the_line_and_no_greeting() {
        let s = spec(&["-w", "echo", "-m", "ping {seq}"]).unwrap();
        assert!(s.greeting.is_empty());
        assert_eq!(exchange(&s, 0, 7), (b"ping 7\n".to_vec(), b"ping 7\n".to_vec()));
    }

    #[test]
    fn templates_override_the_defaults() {
        let s = spec(&[
            "--greeting",
            "hi there",
            "--reply",
            "<{}> ok",
            "--quit",
            "bye",
            "-m",
            "{seq}{conn}{seq}",
        ])
        .unwrap();
        assert_eq!(s.greeting, b"hi there\n");
        assert_eq!(exchange(&s, 1, 2), (b"212\n".to_vec(), b"<212> ok\n".to_vec()));
        assert_eq!(s.quit, b"bye\n");
        // Every `{}` is the line, and a template without one ignores it, as in serve.
        assert_eq!(exchange(&spec(&["--reply", "pong"]).unwrap(), 0, 1).1, b"pong\n");
        assert_eq!(exchange(&spec(&["--reply", "<{}>|{}", "-m", "a"]).unwrap(), 0, 1).1, b"<a>|a\n");
        // An empty greeting means none, even for hello.
        assert!(spec(&["--greeting", ""]).unwrap().greeting.is_empty());
    }

    #[test]
    fn a_message_without_placeholders_is_constant() {
        let s = spec(&["-m", "Tracy"]).unwrap();
        assert_eq!(exchange(&s, 9, 9).1, b"Hello, Tracy!\n");
        // Unknown braces stay literal.
        let s = spec(&["-m", "{x}{seq"]).unwrap();
        assert_eq!(exchange(&s, 9, 9).0, b"{x}{seq\n");
    }

    #[test]
    fn newlines_in_templates_are_refused() {
        assert_eq!(spec(&["-m", "a\nb"]).unwrap_err(), WorkloadError::Newline { what: "--message" });
        assert_eq!(spec(&["--reply", "a\n{}"]).unwrap_err(), WorkloadError::Newline { what: "--reply" });
        let long = "x".repeat(MAX_LINE + 1);
        assert!(
            matches!(spec(&["-m", &long]), Err(WorkloadError::TooLong { len, .. }) if len == MAX_LINE + 1)
        );
    }
}
