//! Happy Eyeballs under real conditions, in network namespaces this test makes
//! itself: a name resolving first to an IPv6 address whose SYNs vanish (routed
//! to a host that forwards nothing and answers nothing) and then to an IPv4
//! address that answers. `tcpkit connect` and `tcpkit fetch` must connect over
//! IPv4 after about the attempt delay (250 ms), not after their connect timeout.
//!
//! Needs root and `ip` (iproute2) and python3 (the HTTP server). The name comes
//! from `/etc/netns/<ns>/hosts`, which `ip netns exec` binds over `/etc/hosts`
//! in the command's private mount namespace. Everything is removed on drop.
//! Where namespaces cannot be made (no root, no `ip`), the test fails with a
//! message; `TCPKIT_SKIP_NETNS=1` turns that into a skip.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::tcpkit_bin;

/// Connect timeout given to both commands: the assertion is that they connect
/// in well under half of it, so a fallback that waits for it fails clearly.
const CONNECT_TIMEOUT_SECS: u64 = 10;
/// The server's HTTP port, inside its own namespace.
const PORT: u16 = 8080;
/// The name the client resolves, and its two addresses. The IPv6 one is global
/// (documentation prefix) so the resolver's RFC 6724 order puts it first.
const NAME: &str = "happy-eyeballs.test";
const V6_DEAD: &str = "2001:db8:201::99";
const V4_LIVE: &str = "10.200.0.2";

/// Two namespaces joined by a veth pair; removed with their hosts file on drop.
struct Netns {
    client: String,
    server: String,
    etc: PathBuf,
    http: Option<Child>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    fn create() -> Result<Netns, String> {
        let id = std::process::id();
        let mut ns = Netns {
            client: format!("tk-he-c{id}"),
            server: format!("tk-he-s{id}"),
            etc: PathBuf::from(format!("/etc/netns/tk-he-c{id}")),
            http: None,
        };
        let (c, s) = (ns.client.clone(), ns.server.clone());
        let (vc, vs) = (format!("tkc{id}"), format!("tks{id}"));
        ip(&["netns", "add", &c])?;
        ip(&["netns", "add", &s])?;
        ip(&["link", "add", &vc, "netns", &c, "type", "veth", "peer", "name", &vs, "netns", &s])?;
        for (n, dev, v4, v6) in [
            (&c, &vc, "10.200.0.1/24", "2001:db8:200::1/64"),
            (&s, &vs, "10.200.0.2/24", "2001:db8:200::2/64"),
        ] {
            ip(&["-n", n, "link", "set", "lo", "up"])?;
            ip(&["-n", n, "addr", "add", v4, "dev", dev])?;
            // nodad: the address is usable at once, not after duplicate detection.
            ip(&["-n", n, "-6", "addr", "add", v6, "dev", dev, "nodad"])?;
            ip(&["-n", n, "link", "set", dev, "up"])?;
        }
        // The dead address is routed to the server namespace, which does not own
        // it: SYNs to it vanish without an answer, as a broken IPv6 path drops them.
        ip(&["-n", &c, "-6", "route", "add", "2001:db8:201::/64", "via", "2001:db8:200::2"])?;
        // A blackhole route discards them silently: without it the server
        // namespace answers "no route" (ICMPv6) and the attempt fails at once,
        // which would not exercise the attempt delay.
        ip(&["-n", &s, "-6", "route", "add", "blackhole", "2001:db8:201::/64"])?;
        std::fs::create_dir_all(&ns.etc).map_err(|e| format!("{}: {e}", ns.etc.display()))?;
        let hosts = format!("127.0.0.1 localhost\n{V6_DEAD} {NAME}\n{V4_LIVE} {NAME}\n");
        std::fs::write(ns.etc.join("hosts"), hosts).map_err(|e| format!("hosts: {e}"))?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("index.html"), "hello over IPv4\n").map_err(|e| e.to_string())?;
        let http = Command::new("ip")
            .args(["netns", "exec", &s, "python3", "-m", "http.server", &PORT.to_string()])
            .args(["--bind", "0.0.0.0", "--directory"])
            .arg(dir.keep())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("python3 -m http.server: {e}"))?;
        ns.http = Some(http);
        Ok(ns)
    }

    /// Run `args` inside the client namespace (with its hosts file).
    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.client])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip netns exec")
    }

    /// `tcpkit args` in the client namespace: its output and how long it took.
    fn tcpkit(&self, args: &[&str]) -> (Output, Duration) {
        let bin = tcpkit_bin();
        let mut all = vec![bin.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let start = Instant::now();
        let out = self.exec(&all);
        (out, start.elapsed())
    }

    /// Wait (bounded) until the HTTP server accepts on its IPv4 address.
    fn wait_server(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let (out, _) =
                self.tcpkit(&["connect", "-z", "--connect-timeout", "1", V4_LIVE, &PORT.to_string()]);
            if out.status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the HTTP server in namespace {} did not start listening", self.server);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.http.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting a namespace deletes its end of the veth pair, and so the pair.
        let _ = ip(&["netns", "del", &self.client]);
        let _ = ip(&["netns", "del", &self.server]);
        let _ = std::fs::remove_dir_all(&self.etc);
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn connect_and_fetch_fall_back_to_ipv4_after_the_attempt_delay_when_ipv6_syns_are_dropped() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) if std::env::var_os("TCPKIT_SKIP_NETNS").is_some_and(|v| v == "1") => {
            eprintln!("skipped (TCPKIT_SKIP_NETNS=1): cannot make network namespaces: {e}");
            return;
        }
        Err(e) => panic!(
            "cannot make network namespaces (needs root and iproute2; set TCPKIT_SKIP_NETNS=1 to skip): {e}"
        ),
    };
    ns.wait_server();
    let port = PORT.to_string();
    let timeout = CONNECT_TIMEOUT_SECS.to_string();
    let bound = Duration::from_secs(CONNECT_TIMEOUT_SECS / 2);

    // The set-up is what it claims: the resolver puts the IPv6 address first...
    let order = ns.exec(&["getent", "ahosts", NAME]);
    let first = String::from_utf8_lossy(&order.stdout).split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(first, V6_DEAD, "resolver order in the namespace: {}", show(&order));
    // ...and IPv6 alone times out (its SYNs vanish) rather than being refused.
    let (out, _) = ns.tcpkit(&["connect", "-6", "-z", "--connect-timeout", "3", NAME, &port]);
    assert_eq!(out.status.code(), Some(4), "IPv6 alone must time out: {}", show(&out));

    let (out, took) = ns.tcpkit(&["connect", "-z", "-v", "--connect-timeout", &timeout, NAME, &port]);
    assert!(out.status.success(), "connect: {}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(V4_LIVE), "connect went over IPv4: {}", show(&out));
    assert!(took < bound, "connect took {took:?}, not well under its {CONNECT_TIMEOUT_SECS} s timeout");

    let url = format!("http://{NAME}:{PORT}/index.html");
    let (out, took) = ns.tcpkit(&["fetch", "-s", "--connect-timeout", &timeout, &url]);
    assert!(out.status.success(), "fetch: {}", show(&out));
    assert_eq!(out.stdout, b"hello over IPv4\n");
    assert!(took < bound, "fetch took {took:?}, not well under its {CONNECT_TIMEOUT_SECS} s timeout");
}
