//! Flags of `tcpkit fetch` (curl's names and meanings where they overlap).
//!
//! Not for: checking combinations beyond what clap expresses; `fetch::run`
//! validates the rest (a header without a colon, `-C -` without a file).
use std::path::PathBuf;

use clap::Args;

/// Fetch a URL over HTTP/1.1 or HTTPS.
///
/// The body goes to stdout, or with `-o FILE` to `FILE.part`, renamed to `FILE`
/// only once the body is complete. Exit codes follow curl: 3 malformed URL,
/// 6 resolve, 7 connect, 18 partial body, 22 HTTP error with -f, 23 write error,
/// 28 timeout, 35 TLS handshake, 47 too many redirects, 52 empty reply,
/// 56 receive failure, 60 bad certificate (see the README for the full table).
#[derive(Debug, Clone, Args)]
pub struct FetchArgs {
    /// The URL (http:// or https://; without a scheme, http:// is assumed).
    pub url: String,

    /// Write the body to FILE (through FILE.part, renamed when complete).
    #[arg(short = 'o', long = "output", value_name = "FILE", conflicts_with = "remote_name")]
    pub output: Option<PathBuf>,

    /// Write the body to a file named after the URL's last path segment
    /// (`index.html` when empty), in the current directory.
    #[arg(short = 'O', long = "remote-name")]
    pub remote_name: bool,

    /// Resume a partial download (`-C -`: the only form): the offset is the size of
    /// FILE.part, or else of FILE.
    #[arg(short = 'C', long = "continue-at", value_name = "DASH", allow_hyphen_values = true)]
    pub continue_at: Option<String>,

    /// Put the response head before the body in the output.
    #[arg(short = 'i', long = "include")]
    pub include: bool,

    /// Send HEAD and show the response head.
    #[arg(short = 'I', long = "head")]
    pub head: bool,

    /// Request method (default GET, or POST with -d).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    pub request: Option<String>,

    /// Send DATA as the body (POST, form content type); `@FILE` reads it from a
    /// file without its newlines. Repeated: joined with `&`.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    pub data: Vec<String>,

    /// Send DATA as the body byte for byte; `@FILE` reads it from a file.
    #[arg(long = "data-binary", value_name = "DATA", conflicts_with = "data")]
    pub data_binary: Option<String>,

    /// Add or replace a header (`Name: value`), remove one (`Name:`), or send one
    /// empty (`Name;`). Repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub header: Vec<String>,

    /// Follow redirects (301, 302, 303, 307, 308).
    #[arg(short = 'L', long = "location")]
    pub location: bool,

    /// With -L: give up after N redirects (exit 47).
    #[arg(long = "max-redirs", value_name = "N", default_value_t = 50)]
    pub max_redirs: u32,

    /// Use IPv4 addresses only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 addresses only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Give up resolving, connecting and the TLS handshake after SECS (exit 28).
    #[arg(long = "connect-timeout", value_name = "SECS", default_value = "300", value_parser = super::duration::parse_duration)]
    pub connect_timeout: std::time::Duration,

    /// Give up the whole transfer, redirects included, decoding too, after SECS
    /// (exit 28; 0 = no limit).
    #[arg(short = 'm', long = "max-time", value_name = "SECS", value_parser = super::duration::parse_duration)]
    pub max_time: Option<std::time::Duration>,

    /// Trust only the certificates in this PEM file.
    #[arg(long = "cacert", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Do not verify the server's certificate (signatures are still checked).
    #[arg(short = 'k', long = "insecure")]
    pub insecure: bool,

    /// Ask for gzip, deflate, br and zstd, and decode the body.
    #[arg(long = "compressed")]
    pub compressed: bool,

    /// Largest response head accepted, in bytes (exit 8 above it).
    #[arg(long = "max-head", value_name = "BYTES", default_value_t = 256 * 1024)]
    pub max_head: usize,

    /// Socket read buffer, in bytes (bounds memory; the body streams through it).
    #[arg(long = "buffer-size", value_name = "BYTES", default_value_t = 256 * 1024,
          value_parser = clap::value_parser!(u32).range(4096..=64 * 1024 * 1024))]
    pub buffer_size: u32,

    /// Most interim (1xx) responses accepted before the final one (exit 8 past it);
    /// all the heads of one response also share --max-head.
    #[arg(long = "max-interim", value_name = "N", default_value_t = 100)]
    pub max_interim: u32,

    /// Over HTTPS, accept a body delimited by the connection's close even when the
    /// server closed without TLS close_notify (by default that is a truncation, exit 18).
    #[arg(long = "ignore-missing-close-notify")]
    pub ignore_missing_close_notify: bool,

    /// Copy plain HTTP bodies to the file with ordinary reads and writes instead
    /// of splice(2).
    #[arg(long = "no-splice")]
    pub no_splice: bool,

    /// Write every response head, interim ones too, byte for byte to FILE (`-` = stdout).
    #[arg(short = 'D', long = "dump-header", value_name = "FILE")]
    pub dump_header: Option<PathBuf>,

    /// Show the request and response heads (and connection details) on stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Silence the progress bar and error messages.
    #[arg(short = 's', long = "silent")]
    pub silent: bool,

    /// With -s: still show error messages.
    #[arg(short = 'S', long = "show-error")]
    pub show_error: bool,

    /// Fail on HTTP status >= 400 with exit 22, writing no body.
    #[arg(short = 'f', long = "fail")]
    pub fail: bool,

    /// After the transfer, print FORMAT on stdout with `%{variable}`s filled in
    /// (http_code, size_download, time_total, remote_ip, json, ...).
    #[arg(short = 'w', long = "write-out", value_name = "FORMAT")]
    pub write_out: Option<String>,

    /// Print a phase breakdown (DNS, TCP, TLS, server wait, transfer) of every
    /// connection, redirect hops included, on stderr.
    #[arg(long = "timing")]
    pub timing: bool,
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command, FetchArgs};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<FetchArgs, clap::Error> {
        let mut all = vec!["tcpkit", "fetch"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|c| match c.command {
            Command::Fetch(a) => a,
            other => panic!("not fetch: {other:?}"),
        })
    }

    #[test]
    fn defaults_match_curl() {
        let a = parse(&["http://x/"]).unwrap();
        assert_eq!(a.url, "http://x/");
        assert_eq!(a.max_redirs, 50);
        assert_eq!(a.max_head, 262_144);
        assert_eq!(a.connect_timeout, std::time::Duration::from_secs(300));
        assert!(a.output.is_none() && a.max_time.is_none() && !a.location && !a.fail);
    }

    #[test]
    fn short_flags_parse_like_curl() {
        let a = parse(&[
            "-sSfLiv",
            "-o",
            "f",
            "-C",
            "-",
            "-X",
            "PUT",
            "-H",
            "A: b",
            "-H",
            "C:",
            "-m",
            "2.5",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "-4",
            "-k",
            "u",
        ])
        .unwrap();
        assert!(a.silent && a.show_error && a.fail && a.location && a.include && a.verbose);
        assert_eq!(a.output.as_deref(), Some(std::path::Path::new("f")));
        assert_eq!(a.continue_at.as_deref(), Some("-"));
        assert_eq!(a.request.as_deref(), Some("PUT"));
        assert_eq!(a.header, vec!["A: b", "C:"]);
        assert_eq!(a.max_time, Some(std::time::Duration::from_millis(2500)));
        assert_eq!(a.dump_header.as_deref(), Some(std::path::Path::new("-")));
        assert_eq!(a.write_out.as_deref(), Some("%{http_code}"));
        assert!(a.ipv4 && a.insecure);
    }

    #[test]
    fn long_flags_parse() {
        let a = parse(&[
            "--data-binary",
            "@body",
            "--compressed",
            "--max-redirs",
            "3",
            "--connect-timeout",
            "1",
            "--cacert",
            "ca.pem",
            "--max-head",
            "1024",
            "--timing",
            "-6",
            "-O",
            "-I",
            "u",
        ])
        .unwrap();
        assert_eq!(a.data_binary.as_deref(), Some("@body"));
        assert!(a.compressed && a.timing && a.ipv6 && a.remote_name && a.head);
        assert_eq!(
            (a.max_redirs, a.max_head, a.connect_timeout),
            (3, 1024, std::time::Duration::from_secs(1))
        );
        let b = parse(&["-d", "a=1", "-d", "b=2", "u"]).unwrap();
        assert_eq!(b.data, vec!["a=1", "b=2"]);
    }

    #[test]
    fn contradictory_flags_are_rejected() {
        assert!(parse(&["-4", "-6", "u"]).is_err());
        assert!(parse(&["-o", "f", "-O", "u"]).is_err());
        assert!(parse(&["-d", "x", "--data-binary", "y", "u"]).is_err());
        assert!(parse(&["--buffer-size", "10", "u"]).is_err());
        assert!(parse(&[]).is_err());
    }
}
