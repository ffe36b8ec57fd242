//! One connection of the load generator, per workload: connect (from a source
//! address), read the greeting, then send requests and verify every reply byte for
//! byte, recording latencies into the shared statistics.
//!
//! Each connection owns its read buffer and its [`Verifier`], so waiting for a
//! reply inside `select!` loses nothing. Every wait is bounded: connects by
//! `--connect-timeout`, replies and closes by `--timeout`, the run by `-d`/`-n`.
//! A connection stops at its first error (counted and, for the first few, kept
//! for the report); `churn` slots stop too rather than retry in a tight loop.
//!
//! Not for: starting the run, the clock or the report (see `mod.rs`).
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, sleep_until, timeout_at};

use super::stats::{Batch, Stats};
use super::verify::{ConnError, Verifier};
use super::workload::Spec;
use super::workload::Workload;
use crate::net::connect::connect_one;
use crate::net::proxy::{Header, Malformed, SourceRange, Version};

/// Read buffer per connection: room for many pipelined replies per read.
const READ_BUF: usize = 4096;

/// Read buffer per `hold` connection: it expects no bytes after the greeting.
const HOLD_READ_BUF: usize = 256;

/// How early an open-loop request may go out: tokio's timer wakes up to a
/// millisecond late, so it is set this much early and the request sent when due
/// within it. Latency is measured from the earlier of the intended and the actual
/// send time, so neither a late timer nor an early send distorts it.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// The run's time line, known once every connection is ready (at once for churn).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When sending starts.
    pub start: Instant,
    /// When measuring starts (`start` + warm-up).
    pub measure: Instant,
    /// When sending stops, if `-d` was given (always for hold).
    pub end: Option<Instant>,
}

/// Errors by kind, and the first few in full.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ErrorLog {
    /// Count per [`ConnError::kind`].
    pub counts: BTreeMap<String, u64>,
    /// The first errors, at most `limit`.
    pub first: Vec<ShownError>,
    /// How many to keep in full (`--show-errors`).
    pub limit: usize,
}

impl ErrorLog {
    /// All errors counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Count `err` of connection `conn`, keeping it in full if among the first `limit`.
    pub fn add(&mut self, conn: u64, err: &ConnError) {
        match self.counts.get_mut(err.kind()) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(err.kind().to_string(), 1);
            }
        }
        if self.first.len() < self.limit {
            self.first.push(ShownError { conn, kind: err.kind().to_string(), message: err.to_string() });
        }
    }
}

/// One error as the report shows it (also read back from interval logs).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShownError {
    /// The connection's number.
    pub conn: u64,
    /// [`ConnError::kind`].
    pub kind: String,
    /// The error in full, bytes escaped.
    pub message: String,
}

/// Everything the connections share: settings, the clock, counters and results.
#[derive(Debug)]
pub struct Shared {
    /// The workload's bytes.
    pub spec: Spec,
    /// The server.
    pub addr: SocketAddr,
    /// Source addresses, used round-robin; empty = the OS chooses.
    pub sources: Vec<IpAddr>,
    /// Connections (slots, for churn).
    pub connections: u64,
    /// The number of this process's first connection: with a shard, the
    /// connections before it belong to other agents.
    pub first_id: u64,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Time between requests of one connection in open loop; `None` = closed loop.
    pub interval: Option<Duration>,
    /// Measured requests in total (`-n`).
    pub requests: Option<u64>,
    /// Bound on a connect attempt.
    pub connect_timeout: Duration,
    /// Bound on waiting for a reply, the greeting or a close.
    pub timeout: Duration,
    /// Bounds connection attempts in flight (`--connect-concurrency`).
    pub connect_gate: Semaphore,
    /// The clock, published when the run starts.
    pub clock: watch::Receiver<Option<Clock>>,
    /// Connections that finished connecting (well or not); the runner waits for all.
    pub ready: AtomicU64,
    /// Wakes the runner when `ready` grows.
    pub ready_notify: Notify,
    /// Measured requests claimed so far, against `requests`.
    pub claimed: AtomicU64,
    /// Verified replies (sessions for churn) including the warm-up, for the status line.
    pub verified: AtomicU64,
    /// Connections established.
    pub established: AtomicU64,
    /// Connections (or churn sessions) that failed to connect.
    pub connect_failed: AtomicU64,
    /// `hold` connections still open and correct at the end.
    pub held: AtomicU64,
    /// Measured latencies.
    pub stats: Mutex<Stats>,
    /// Errors.
    pub errors: Mutex<ErrorLog>,
    /// Connections of the whole run (all shards): churn session `seq` of slot
    /// `id` is client number `id + seq * total_connections`, unique across shards.
    pub total_connections: u64,
    /// The PROXY header sent first, and the synthetic clients it names.
    pub proxy: Option<(Version, SourceRange)>,
    /// Malformed PROXY headers to send instead of churn sessions (empty: none).
    pub malformed: Vec<Malformed>,
    /// TLS over every connection: the client configuration and the server name.
    pub tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// A connection to the server: plain, or TLS over it.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// rustls over TCP (boxed: its buffers are large, the plain case is common).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Lock, ignoring poisoning: a panicked connection leaves counts that are still valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Count `err` for connection `id`, keeping it in full if among the first.
    pub fn error(&self, id: u64, err: ConnError) {
        lock(&self.errors).add(id, &err);
    }

    /// Take one measured request from `-n`; false when none is left.
    fn claim(&self) -> bool {
        match self.requests {
            None => true,
            Some(n) => self.claimed.fetch_add(1, Ordering::Relaxed) < n,
        }
    }

    fn absorb(&self, batch: &mut Batch) {
        if !batch.is_empty() {
            lock(&self.stats).absorb(batch);
        }
    }

    fn mark_ready(&self) {
        self.ready.fetch_add(1, Ordering::Release);
        self.ready_notify.notify_one();
    }

    async fn clock(&self) -> Clock {
        let mut rx = self.clock.clone();
        loop {
            if let Some(c) = *rx.borrow_and_update() {
                return c;
            }
            if rx.changed().await.is_err() {
                // The runner is gone; nothing to measure. Never reached in a run.
                let now = Instant::now();
                return Clock { start: now, measure: now, end: Some(now) };
            }
        }
    }

    /// The client number of session `seq` of connection `id`, unique in the run.
    fn client(&self, id: u64, seq: u64) -> u64 {
        id.wrapping_add(seq.wrapping_mul(self.total_connections))
    }

    /// Connect connection `id` (session `seq`) within the connect timeout, from
    /// its source address, send its PROXY header if there is one, then shake
    /// hands over TLS if asked (bounded by `--timeout`).
    async fn open(&self, id: u64, seq: u64) -> Result<Stream, ConnError> {
        let stream = self.open_tcp(id, seq).await?;
        match &self.tls {
            None => Ok(Stream::Plain(stream)),
            Some((config, name)) => {
                let tls =
                    crate::net::tls::handshake(stream, config.clone(), name.clone(), Some(self.timeout))
                        .await?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }

    /// The TCP part of [`Shared::open`], within the connect timeout.
    async fn open_tcp(&self, id: u64, seq: u64) -> Result<TcpStream, ConnError> {
        let source = if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[(id % self.sources.len() as u64) as usize])
        };
        let deadline = Instant::now() + self.connect_timeout;
        let connecting = async {
            let mut stream = open_from(self.addr, source).await?;
            if let Some((version, range)) = &self.proxy {
                let header = Header::proxy(*version, range.nth(self.client(id, seq)), self.addr)
                    .encode()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                stream.write_all(&header).await?;
            }
            Ok::<_, std::io::Error>(stream)
        };
        match timeout_at(deadline, connecting).await {
            Ok(Ok(s)) => {
                self.established.fetch_add(1, Ordering::Relaxed);
                Ok(s)
            }
            Ok(Err(e)) => {
                self.connect_failed.fetch_add(1, Ordering::Relaxed);
                Err(ConnError::Connect(e))
            }
            Err(_) => {
                self.connect_failed.fetch_add(1, Ordering::Relaxed);
                let ms = self.connect_timeout.as_millis();
                Err(ConnError::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("timed out after {ms} ms"),
                )))
            }
        }
    }
}

/// A connection to `addr` from `source` (see [`connect_one`], which binds it with
/// `IP_BIND_ADDRESS_NO_PORT`), with `TCP_NODELAY`: requests go out at once.
pub async fn open_from(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let stream = connect_one(addr, source).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Run connection `id` of the workload to its end; results go into `sh`.
pub async fn run(sh: Arc<Shared>, id: u64) {
    let result = match sh.spec.kind {
        Workload::Hello | Workload::Echo => requests(&sh, id).await,
        Workload::Hold => hold(&sh, id).await,
        Workload::Churn => churn(&sh, id).await,
    };
    if let Err(e) = result {
        sh.error(id, e);
    }
}

/// A connection's socket, read buffer and expectations.
struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    verifier: Verifier<(Instant, bool)>,
}

impl Conn {
    fn new(stream: Stream, buf_size: usize) -> Self {
        Conn { stream, buf: vec![0; buf_size], verifier: Verifier::new() }
    }

    /// One read, verified; `done` gets each completed reply's tag.
    async fn read(&mut self, deadline: Instant, done: impl FnMut((Instant, bool))) -> Result<(), ConnError> {
        let n = match timeout_at(deadline, self.stream.read(&mut self.buf)).await {
            // The caller knows the timeout's length and fills it in (`with_timeout`).
            Err(_) => {
                let expected = self.verifier.front().unwrap_or_default().to_vec();
                return Err(ConnError::Timeout { after: Duration::ZERO, expected });
            }
            Ok(Err(e)) => return Err(ConnError::from_io(e)),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            // A close with nothing awaited is also wrong here: callers expecting one use `closed`.
            self.verifier.eof()?;
            return Err(ConnError::Closed);
        }
        self.verifier.feed(&self.buf[..n], done)
    }

    /// Read until every expected reply is complete.
    async fn settle(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let deadline = Instant::now() + timeout;
        while self.verifier.pending() > 0 {
            self.read(deadline, |_| ()).await.map_err(|e| with_timeout(e, timeout))?;
        }
        Ok(())
    }

    /// Read until the server closes; any byte before that is unexpected.
    async fn closed(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let deadline = Instant::now() + timeout;
        match timeout_at(deadline, self.stream.read(&mut self.buf)).await {
            Err(_) => Err(ConnError::Timeout { after: timeout, expected: Vec::new() }),
            Ok(Err(e)) => Err(ConnError::from_io(e)),
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(n)) => {
                Err(ConnError::Unexpected { got: self.buf[..n.min(super::verify::SHOWN_BYTES)].to_vec() })
            }
        }
    }

    async fn write(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), ConnError> {
        match timeout_at(Instant::now() + timeout, self.stream.write_all(bytes)).await {
            Err(_) => Err(ConnError::Timeout { after: timeout, expected: Vec::new() }),
            Ok(r) => r.map_err(ConnError::from_io),
        }
    }
}

/// Fill in the timeout a [`Conn::read`] does not know.
fn with_timeout(e: ConnError, after: Duration) -> ConnError {
    match e {
        ConnError::Timeout { expected, .. } => ConnError::Timeout { after, expected },
        other => other,
    }
}

/// Connect and read the greeting, holding a connect permit throughout so a burst
/// never exceeds `--connect-concurrency`.
async fn greeted(sh: &Shared, id: u64, seq: u64, buf_size: usize) -> Result<Conn, ConnError> {
    // The gate is never closed, so acquiring only waits.
    let _permit = sh.connect_gate.acquire().await.ok();
    let mut conn = Conn::new(sh.open(id, seq).await?, buf_size);
    if !sh.spec.greeting.is_empty() {
        conn.verifier.expect(&sh.spec.greeting, (Instant::now(), false));
        conn.settle(sh.timeout).await?;
    }
    Ok(conn)
}

/// Marks the connection ready when dropped, on every path out of the connect phase.
struct ReadyGuard<'a>(Option<&'a Shared>);

impl ReadyGuard<'_> {
    fn fire(&mut self) {
        if let Some(sh) = self.0.take() {
            sh.mark_ready();
        }
    }
}

impl Drop for ReadyGuard<'_> {
    fn drop(&mut self) {
        self.fire();
    }
}

/// `hello` and `echo`: requests and verified replies until the end.
async fn requests(sh: &Shared, id: u64) -> Result<(), ConnError> {
    let mut ready = ReadyGuard(Some(sh));
    let mut conn = greeted(sh, id, 0, READ_BUF).await?;
    ready.fire();
    let clock = sh.clock().await;
    // With --start-at the clock is set ahead: nothing is sent before its start.
    sleep_until(clock.start).await;
    let spec = &sh.spec;
    let mut seq = 0u64;
    // Open loop: connections are staggered evenly over one interval.
    let mut next_send = match sh.interval {
        Some(iv) => clock.start + iv.mul_f64((id - sh.first_id) as f64 / sh.connections as f64),
        None => clock.start,
    };
    let mut out = Vec::new();
    let mut batch = Batch::default();
    let mut stopping = false;
    let mut last_progress = Instant::now();
    let result = loop {
        let now = Instant::now();
        if !stopping {
            while conn.verifier.pending() < sh.pipeline {
                if clock.end.is_some_and(|e| now >= e) {
                    stopping = true;
                    break;
                }
                let intended = match sh.interval {
                    Some(_) if next_send > now + TIMER_SLACK => break,
                    Some(iv) => {
                        let t = next_send.min(now);
                        next_send += iv;
                        t
                    }
                    None => now,
                };
                let measured = intended >= clock.measure;
                if measured && !sh.claim() {
                    stopping = true;
                    break;
                }
                if conn.verifier.pending() == 0 {
                    last_progress = now;
                }
                let line = spec.request(id, seq, &mut out);
                seq += 1;
                conn.verifier.expect_with((intended, measured), |b| spec.reply(&out[line], b));
            }
            if !out.is_empty() {
                if let Err(e) = conn.write(&out, sh.timeout).await {
                    break Err(e);
                }
                out.clear();
            }
        }
        if conn.verifier.pending() == 0 {
            if stopping {
                break Ok(());
            }
            // Open loop with nothing in flight: sleep until the next send is due.
            let wake = clock.end.map_or(next_send, |e| e.min(next_send));
            sleep_until(wake.checked_sub(TIMER_SLACK).unwrap_or(wake)).await;
            continue;
        }
        // Wake for the next send when the pipeline has room in open loop.
        let wake = match sh.interval {
            Some(_) if !stopping && conn.verifier.pending() < sh.pipeline => {
                Some(next_send.checked_sub(TIMER_SLACK).unwrap_or(next_send))
            }
            _ => None,
        };
        let deadline = last_progress + sh.timeout;
        let mut completed = 0u64;
        let read = conn.read(deadline, |(intended, measured)| {
            completed += 1;
            if measured {
                let now = Instant::now();
                if batch.push(now - intended, now - clock.measure) {
                    sh.absorb(&mut batch);
                }
            }
        });
        let step = match wake {
            None => read.await,
            Some(w) => tokio::select! {
                r = read => r,
                () = sleep_until(w) => Ok(()),
            },
        };
        if completed > 0 {
            last_progress = Instant::now();
            sh.verified.fetch_add(completed, Ordering::Relaxed);
        }
        if let Err(e) = step {
            break Err(with_timeout(e, sh.timeout));
        }
    };
    sh.absorb(&mut batch);
    result
}

/// `hold`: connect, greeting, then idle until the end; any byte or close is an error.
async fn hold(sh: &Shared, id: u64) -> Result<(), ConnError> {
    let mut ready = ReadyGuard(Some(sh));
    let mut conn = greeted(sh, id, 0, HOLD_READ_BUF).await?;
    ready.fire();
    let clock = sh.clock().await;
    let end = clock.end.unwrap_or(clock.start);
    tokio::select! {
        r = conn.stream.read(&mut conn.buf) => match r {
            Ok(0) => Err(ConnError::Closed),
            Ok(n) => Err(ConnError::Unexpected { got: conn.buf[..n.min(super::verify::SHOWN_BYTES)].to_vec() }),
            Err(e) => Err(ConnError::from_io(e)),
        },
        () = sleep_until(end) => {
            sh.held.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// `churn`: sessions one after another (connect, greeting, one hello, the quit
/// word, the server's close) until the end; latency is the whole session.
async fn churn(sh: &Shared, id: u64) -> Result<(), ConnError> {
    let clock = sh.clock().await;
    sleep_until(clock.start).await;
    let spec = &sh.spec;
    let mut next_start = match sh.interval {
        Some(iv) => clock.start + iv.mul_f64((id - sh.first_id) as f64 / sh.connections as f64),
        None => clock.start,
    };
    let mut batch = Batch::default();
    let mut out = Vec::new();
    let mut seq = 0u64;
    let result = loop {
        let mut now = Instant::now();
        if clock.end.is_some_and(|e| now >= e) {
            break Ok(());
        }
        let intended = match sh.interval {
            Some(iv) => {
                if next_start > now + TIMER_SLACK {
                    let wake = clock.end.map_or(next_start, |e| e.min(next_start));
                    sleep_until(wake.checked_sub(TIMER_SLACK).unwrap_or(wake)).await;
                    continue;
                }
                let t = next_start.min(now);
                next_start += iv;
                t
            }
            None => now,
        };
        let measured = intended >= clock.measure;
        if measured && !sh.claim() {
            break Ok(());
        }
        let session = async {
            if !sh.malformed.is_empty() {
                return malformed(sh, id, seq).await;
            }
            let mut conn = greeted(sh, id, seq, READ_BUF).await?;
            out.clear();
            let line = spec.request(id, seq, &mut out);
            conn.verifier.expect_with((intended, measured), |b| spec.reply(&out[line], b));
            conn.write(&out, sh.timeout).await?;
            conn.settle(sh.timeout).await?;
            conn.write(&spec.quit, sh.timeout).await?;
            conn.closed(sh.timeout).await
        };
        if let Err(e) = session.await {
            break Err(e);
        }
        seq += 1;
        now = Instant::now();
        sh.verified.fetch_add(1, Ordering::Relaxed);
        if measured && batch.push(now - intended, now - clock.measure) {
            sh.absorb(&mut batch);
        }
    };
    sh.absorb(&mut batch);
    result
}

/// One malformed-header session: connect, send the header, shut down the write
/// half (a cut header is refusable only then), and expect a close without a
/// byte. A reset counts as a close: a receiver that closes with our bytes
/// unread resets. An answer or no close within the timeout is an error.
async fn malformed(sh: &Shared, id: u64, seq: u64) -> Result<(), ConnError> {
    let n = sh.malformed.len() as u64;
    let kind = sh.malformed[(sh.client(id, seq) % n) as usize];
    let mut conn = {
        let _permit = sh.connect_gate.acquire().await.ok();
        Conn::new(sh.open(id, seq).await?, HOLD_READ_BUF)
    };
    match conn.write(&kind.bytes(), sh.timeout).await {
        // Refused before the whole header was written: that is a close.
        Err(ConnError::Reset) => return Ok(()),
        other => other?,
    }
    // Closing our half only fails when the receiver already reset; the read says which.
    let _ = conn.stream.shutdown().await;
    let deadline = Instant::now() + sh.timeout;
    match timeout_at(deadline, conn.stream.read(&mut conn.buf)).await {
        Err(_) => Err(ConnError::ProxyNotClosed { kind: kind.name(), after: sh.timeout }),
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(got)) => Err(ConnError::ProxyAnswered {
            kind: kind.name(),
            got: conn.buf[..got.min(super::verify::SHOWN_BYTES)].to_vec(),
        }),
        Ok(Err(e)) => match ConnError::from_io(e) {
            ConnError::Reset => Ok(()),
            other => Err(other),
        },
    }
}
