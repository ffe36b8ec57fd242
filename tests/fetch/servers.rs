//! Test servers for `tcpkit fetch`, each on port 0 on loopback and stopped on drop:
//! a hyper server with a few routes, a scripted raw socket for malformed and
//! truncated replies, and TLS (rustls + rcgen) in front of either.
use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use rustls::ServerConfig;
use tokio::sync::oneshot;

/// The longest any test process may run before it is killed and the test fails.
const PROCESS_LIMIT: Duration = Duration::from_secs(30);

/// Run `cmd` to the end (killed after [`PROCESS_LIMIT`]), collecting its output.
pub fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn tcpkit");
    wait(child)
}

/// Wait for `child` (its stdout/stderr piped, or not), bounded by [`PROCESS_LIMIT`].
pub fn wait(mut child: Child) -> Output {
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + PROCESS_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tcpkit ran longer than {PROCESS_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// A request as the server saw it.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub type Handler = Arc<dyn Fn(&Seen) -> Response<BoxBody<Bytes, Infallible>> + Send + Sync>;

/// A hyper HTTP/1.1 server (optionally behind TLS) answering with `handler`,
/// recording every request.
pub struct HyperServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HyperServer {
    pub fn start(handler: Handler) -> Self {
        Self::start_with(handler, None, "127.0.0.1:0")
    }

    pub fn start_with(handler: Handler, tls: Option<Arc<ServerConfig>>, bind: &str) -> Self {
        let listener = TcpListener::bind(bind).expect("bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = oneshot::channel();
        let seen2 = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                loop {
                    let (sock, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                        _ = &mut stopped => return,
                    };
                    let (handler, seen, acceptor) = (handler.clone(), seen2.clone(), acceptor.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                            let (handler, seen) = (handler.clone(), seen.clone());
                            async move {
                                let (parts, body) = req.into_parts();
                                let body =
                                    body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                                let s = Seen {
                                    method: parts.method.to_string(),
                                    target: parts.uri.to_string(),
                                    headers: parts
                                        .headers
                                        .iter()
                                        .map(|(n, v)| {
                                            (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into())
                                        })
                                        .collect(),
                                    body,
                                };
                                let resp = handler(&s);
                                seen.lock().unwrap().push(s);
                                Ok::<_, Infallible>(resp)
                            }
                        });
                        let builder = hyper::server::conn::http1::Builder::new();
                        match acceptor {
                            None => {
                                let io = hyper_util::rt::TokioIo::new(sock);
                                let _ = builder.serve_connection(io, service).await;
                            }
                            Some(acc) => {
                                if let Ok(tls) = acc.accept(sock).await {
                                    let io = hyper_util::rt::TokioIo::new(tls);
                                    let _ = builder.serve_connection(io, service).await;
                                }
                            }
                        }
                    });
                }
            });
        });
        HyperServer { addr, seen, stop: Some(stop), thread: Some(thread) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HyperServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A body hyper must send chunked: its size is unknown up front.
pub struct Chunks(pub VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

pub fn full(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<BoxBody<Bytes, Infallible>> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in headers {
        let name = hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap();
        resp.headers_mut().append(name, v.parse().unwrap());
    }
    resp
}

pub fn chunked(pieces: &[&[u8]]) -> Response<BoxBody<Bytes, Infallible>> {
    let body = Chunks(pieces.iter().map(|p| Bytes::copy_from_slice(p)).collect());
    Response::new(body.boxed())
}

/// Serve `body` with Range support (`bytes=N-`): 206 with Content-Range, 416 past the end.
pub fn ranged(seen: &Seen, body: &[u8]) -> Response<BoxBody<Bytes, Infallible>> {
    let total = body.len();
    let from =
        seen.header("range").and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
    match from {
        None => full(200, &[], body.to_vec()),
        Some(n) if n >= total => full(416, &[("content-range", &format!("bytes */{total}"))], ""),
        Some(n) => {
            let cr = format!("bytes {n}-{}/{total}", total - 1);
            full(206, &[("content-range", &cr)], body[n..].to_vec())
        }
    }
}

/// The test body: `n` bytes that differ at every position modulo 251.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// What a scripted connection does after reading the request head.
#[derive(Clone)]
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Wait (bounded by the test).
    Pause(Duration),
    /// As the first step: do not wait for a request head.
    Immediately,
    /// Close with a TCP reset (SO_LINGER 0) instead of a FIN.
    Reset,
    /// Over TLS: send close_notify (without it the close is a bare TCP FIN).
    CloseNotify,
}

/// A raw TCP server: each connection gets the next script (the last one repeats),
/// after the request head; then the connection closes. Requests are recorded.
pub struct RawServer {
    pub addr: SocketAddr,
    /// The request heads received, in order.
    #[allow(dead_code)] // Read by some tests only.
    pub requests: Arc<Mutex<Vec<Vec<u8>>>>,
    thread: Option<JoinHandle<()>>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl RawServer {
    pub fn start(scripts: Vec<Vec<Step>>) -> Self {
        Self::start_tls(scripts, None)
    }

    /// With `tls`, the raw bytes are sent inside TLS.
    pub fn start_tls(scripts: Vec<Vec<Step>>, tls: Option<Arc<ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (req2, done2) = (requests.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let mut scripts: VecDeque<Vec<Step>> = scripts.into();
            let deadline = Instant::now() + PROCESS_LIMIT;
            while !done2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((sock, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let script =
                    if scripts.len() > 1 { scripts.pop_front().unwrap() } else { scripts[0].clone() };
                let (req, tls, done) = (req2.clone(), tls.clone(), done2.clone());
                std::thread::spawn(move || serve_script(sock, script, req, tls, done));
            }
        });
        RawServer { addr, requests, thread: Some(thread), done }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_script(
    sock: TcpStream,
    script: Vec<Step>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    tls: Option<Arc<ServerConfig>>,
    done: Arc<std::sync::atomic::AtomicBool>,
) {
    sock.set_nonblocking(false).unwrap();
    // Each Send leaves as its own segment, so tests control how the bytes are split.
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reset_handle = sock.try_clone().ok();
    let mut plain = sock;
    let mut tls_conn = tls.map(|config| {
        rustls::StreamOwned::new(rustls::ServerConnection::new(config).unwrap(), plain.try_clone().unwrap())
    });
    let stream: &mut dyn ReadWrite = match tls_conn.as_mut() {
        Some(t) => t,
        None => &mut plain,
    };
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let wait_for_head = !matches!(script.first(), Some(Step::Immediately));
    while wait_for_head && !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    requests.lock().unwrap().push(head);
    for step in script {
        match step {
            Step::Send(bytes) => {
                if stream.write_all(&bytes).is_err() || stream.flush().is_err() {
                    return;
                }
            }
            Step::Immediately => {}
            Step::CloseNotify => {
                if let Some(t) = tls_conn.as_mut() {
                    t.conn.send_close_notify();
                    let _ = t.flush();
                }
                return;
            }
            Step::Reset => {
                if let Some(sock) = reset_handle.as_ref() {
                    let _ = socket2::SockRef::from(sock).set_linger(Some(Duration::ZERO));
                }
                return;
            }
            Step::Pause(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !done.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Certificates for the TLS tests.
pub struct Pki {
    pub ca_pem: String,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    pub fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        // A name of its own: a CA sharing another's name would fail as a bad
        // signature rather than as an unknown issuer.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("tcpkit test CA {n}"));
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca_pem: ca.pem(), ca, ca_key }
    }

    /// A server certificate for `names`, signed by the CA; `expired` puts its
    /// validity in the past. Returns (chain PEM, key PEM).
    pub fn leaf(&self, names: &[&str], expired: bool) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn server_config(&self, names: &[&str], expired: bool) -> Arc<ServerConfig> {
        let (cert, key) = self.leaf(names, expired);
        tcpkit::net::tls::server_config(cert.as_bytes(), key.as_bytes()).unwrap()
    }
}
