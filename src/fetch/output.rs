//! Where the response goes: each head to `-D`, `-v` and `-i` as received; the body
//! through the content decoder to the [`Sink`], under the `-m` deadline; the progress bar.
//!
//! Not for: HTTP framing or deciding what to write (the transfer does); the files
//! themselves (`sink`).
use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use super::config::Config;
use super::decode::{ContentDecoder, DecodeError};
use super::error::FetchError;
use super::http1::BodyKind;
use super::sink::{self, Sink, Start};

/// The output side of one transfer.
pub(crate) struct Output {
    /// The body's destination, opened at the first byte to write.
    pub sink: Option<Sink>,
    /// `-D`: the file every head goes to, and its name for messages.
    dump: Option<(File, String)>,
    /// `-i` with `-C -`: the heads, held until the resume decision opens the sink
    /// (bounded by `max_head`, as the heads are).
    held: Vec<u8>,
    /// When `-m` runs out, and `-m` itself: checked between decoded pieces, since
    /// decoding a bomb is work that never waits on the runtime's timer.
    deadline: Option<(Instant, Duration)>,
}

impl Output {
    pub fn new(cfg: &Config) -> Output {
        let deadline = cfg.max_time.and_then(|d| Some((Instant::now().checked_add(d)?, d)));
        Output { sink: None, dump: None, held: Vec::new(), deadline }
    }

    /// A head as received: to -D, to stderr with -v, into the output with -i.
    pub fn head(&mut self, cfg: &Config, raw: &[u8]) -> Result<(), FetchError> {
        if let Some(path) = &cfg.dump {
            if self.dump.is_none() {
                let (file, what) = if path.as_os_str() == "-" {
                    (dup_stdout(), "stdout".to_string())
                } else if cfg.dump_append {
                    let file = std::fs::OpenOptions::new().append(true).create(true).open(path);
                    (file, path.display().to_string())
                } else {
                    (File::create(path), path.display().to_string())
                };
                let file = file.map_err(|source| FetchError::Write { what: what.clone(), source })?;
                self.dump = Some((file, what));
            }
            if let Some((file, what)) = &mut self.dump {
                file.write_all(raw).map_err(|source| FetchError::Write { what: what.clone(), source })?;
            }
        }
        if cfg.verbose {
            to_stderr(&prefixed("< ", raw));
        }
        if cfg.include && cfg.resume && self.sink.is_none() {
            self.held.extend_from_slice(raw);
        } else if cfg.include {
            self.open(cfg, Start::Fresh)?;
            if let Some(sink) = self.sink.as_mut() {
                sink.write_all(raw).map_err(|source| FetchError::Write { what: sink.describe(), source })?;
            }
        }
        Ok(())
    }

    /// Open the sink (once): stdout, or `FILE.part` started as `how` says.
    pub fn open(&mut self, cfg: &Config, how: Start) -> Result<(), FetchError> {
        if self.sink.is_some() {
            return Ok(());
        }
        let sink = match &cfg.output {
            None => Sink::stdout().map_err(|source| FetchError::Write { what: "stdout".into(), source })?,
            Some(dest) => Sink::file(dest, how).map_err(|source| FetchError::Write {
                what: sink::part_path(dest).display().to_string(),
                source,
            })?,
        };
        let sink = self.sink.insert(sink);
        if !self.held.is_empty() {
            let held = std::mem::take(&mut self.held);
            sink.write_all(&held).map_err(|source| FetchError::Write { what: sink.describe(), source })?;
        }
        Ok(())
    }

    /// A chunked body's trailer fields, as curl shows them: after the body with `-i`,
    /// at the end of the heads with `-D`.
    pub fn trailers(&mut self, cfg: &Config, fields: &[(String, Vec<u8>)]) -> Result<(), FetchError> {
        if fields.is_empty() || !(cfg.include || self.dump.is_some()) {
            return Ok(());
        }
        let mut raw = Vec::new();
        for (name, value) in fields {
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        if let Some((file, what)) = &mut self.dump {
            file.write_all(&raw).map_err(|source| FetchError::Write { what: what.clone(), source })?;
        }
        if let (true, Some(sink)) = (cfg.include, self.sink.as_mut()) {
            sink.write_all(&raw).map_err(|source| FetchError::Write { what: sink.describe(), source })?;
        }
        Ok(())
    }

    /// Draw progress for a body of `kind` (counting the bytes resumed from).
    pub fn start_progress(&mut self, cfg: &Config, kind: BodyKind, how: Start) {
        let Some(sink) = self.sink.as_mut().filter(|_| cfg.progress) else { return };
        let done = match how {
            Start::Append(r) => r.offset,
            Start::Fresh => 0,
        };
        let bar = match kind {
            BodyKind::Length(n) => indicatif::ProgressBar::new(n + done).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} [{wide_bar}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            _ => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            ),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.set_position(done);
        sink.set_progress(bar);
    }

    /// Body bytes (after framing): decoded when `content` says so, then to the sink.
    /// `received` is for the timeout message.
    pub fn body(
        &mut self,
        content: &mut Option<ContentDecoder>,
        data: &[u8],
        received: u64,
    ) -> Result<(), FetchError> {
        if data.is_empty() {
            return Ok(());
        }
        let deadline = self.deadline;
        let Some(sink) = self.sink.as_mut() else { return Ok(()) };
        let res = match content {
            Some(decoder) => decoder
                .write(data, &mut Deadline { sink, at: deadline.map(|d| d.0) })
                .map_err(|e| decode_error(e, deadline, received)),
            None => {
                sink.write_all(data).map_err(|source| FetchError::Write { what: sink.describe(), source })
            }
        };
        if let (Err(_), Some(source)) = (&res, sink.take_error()) {
            return Err(FetchError::Write { what: sink.describe(), source });
        }
        res
    }

    /// The body ended: flush the decoder and check its stream was complete.
    pub fn end_body(
        &mut self,
        content: &mut Option<ContentDecoder>,
        received: u64,
    ) -> Result<(), FetchError> {
        let deadline = self.deadline;
        let (Some(decoder), Some(sink)) = (content.as_mut(), self.sink.as_mut()) else { return Ok(()) };
        let res = decoder
            .finish(&mut Deadline { sink, at: deadline.map(|d| d.0) })
            .map_err(|e| decode_error(e, deadline, received));
        if let Some(source) = sink.take_error() {
            return Err(FetchError::Write { what: sink.describe(), source });
        }
        res
    }
}

/// Best-effort diagnostics: a closed or full stderr loses them, never the transfer.
pub(crate) fn to_stderr(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// The body's sink behind the `-m` deadline (see [`Output::deadline`]).
struct Deadline<'s> {
    sink: &'s mut Sink,
    at: Option<Instant>,
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.at.is_some_and(|at| Instant::now() >= at) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "--max-time ran out while decoding",
            ));
        }
        self.sink.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

/// A decoding error, or `-m` run out while decoding (a timeout).
fn decode_error(e: DecodeError, deadline: Option<(Instant, Duration)>, received: u64) -> FetchError {
    match (&e, deadline) {
        (DecodeError::Write(io), Some((_, limit))) if io.kind() == std::io::ErrorKind::TimedOut => {
            FetchError::Timeout { ms: limit.as_millis(), received }
        }
        _ => FetchError::Decode(e),
    }
}

fn dup_stdout() -> std::io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(rustix::io::dup(std::io::stdout().as_fd())?))
}

/// `raw` as text lines, each with `prefix` (for -v).
pub(crate) fn prefixed(prefix: &str, raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            continue;
        }
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_lines_are_prefixed_without_the_blank_line() {
        assert_eq!(prefixed("< ", b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"), "< HTTP/1.1 200 OK\n< A: b\n");
    }
}
