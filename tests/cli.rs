//! Process tests of the command line shared by every command: the one duration
//! parser (huge values capped, never a panic; bad ones refused with a message),
//! flags checked before any work, shell completions and the man page.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{ServeProcess, tcpkit};

/// Bound on every process run here, so a hang fails instead of blocking CI.
const LIMIT: Duration = Duration::from_secs(20);

/// Run `tcpkit args` with `stdin`, killed after [`LIMIT`]; its output.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = tcpkit()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpkit");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("tcpkit {args:?} did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Exit code and stderr, for the assertion messages.
fn show(out: &Output) -> String {
    format!("status {:?}, stderr {}", out.status, String::from_utf8_lossy(&out.stderr))
}

#[test]
fn connect_caps_a_huge_idle_and_connect_timeout_instead_of_panicking() {
    let serve = ServeProcess::start(&[]);
    let port = serve.addr.port().to_string();
    let out =
        run(&["connect", "-w", "1.8e19", "--connect-timeout", "1e300", "127.0.0.1", &port], b"Ann\nexit\n");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Hello, Ann!"));
}

#[test]
fn fetch_caps_huge_timeouts_instead_of_refusing_or_panicking() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
    });
    let out = run(&["fetch", "-s", "--connect-timeout", "1e300", "-m", "1.8e19", &url], b"");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(out.stdout, b"ok\n");
    server.join().unwrap();
}

#[test]
fn serve_caps_huge_timeouts_and_still_shuts_down() {
    let mut serve = ServeProcess::start(&["--idle-timeout", "1e300", "--shutdown-timeout", "1.8e19"]);
    let mut s = std::net::TcpStream::connect(serve.addr).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"Bo\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("Hello, Bo!") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(s);
    serve.signal("TERM");
    assert!(serve.wait_exit().success());
}

#[test]
fn bench_caps_huge_timeouts_and_runs() {
    let serve = ServeProcess::start(&[]);
    let addr = serve.addr.to_string();
    let out = run(
        &[
            "bench",
            "-c",
            "1",
            "-n",
            "5",
            "--timeout",
            "1e300",
            "--connect-timeout",
            "1.8e19",
            "--warmup",
            "0",
            &addr,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn every_command_refuses_negative_and_non_finite_durations_with_a_message() {
    let cases: &[&[&str]] = &[
        &["connect", "--idle-timeout=-1", "127.0.0.1", "9"],
        &["connect", "--connect-timeout", "nan", "127.0.0.1", "9"],
        &["fetch", "--max-time=-0.5", "http://127.0.0.1:9/"],
        &["fetch", "--connect-timeout", "inf", "http://127.0.0.1:9/"],
        &["serve", "--idle-timeout=-3"],
        &["serve", "--shutdown-timeout", "infinity"],
        &["bench", "--timeout=-1s", "127.0.0.1:9"],
        &["bench", "-d", "NaN", "127.0.0.1:9"],
    ];
    for args in cases {
        let out = run(args, b"");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(err.contains("negative") || err.contains("finite"), "{args:?}: {err}");
    }
}

#[test]
fn bench_plot_to_an_unwritable_path_fails_before_the_run() {
    // Nothing listens on the address: were the run started first, the failure
    // would be about connecting, after the connect timeout.
    let out = run(&["bench", "-n", "1", "--plot", "/nonexistent-dir/out.svg", "127.0.0.1:9"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(err.contains("cannot write /nonexistent-dir/out.svg"), "{err}");
    assert!(out.stdout.is_empty(), "the run must not start: {}", String::from_utf8_lossy(&out.stdout));
}

/// Every subcommand's name, from the clap definitions themselves.
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    let names: Vec<String> =
        tcpkit::cli::Cli::command().get_subcommands().map(|s| s.get_name().to_string()).collect();
    for want in ["serve", "connect", "fetch", "bench", "completions", "man"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    names
}

#[test]
fn completions_generate_for_bash_zsh_and_fish_and_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell], b"");
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", show(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in subcommands() {
            assert!(script.contains(&sub), "{shell} completions do not mention {sub}");
        }
        // A flag of a subcommand too, not only the names.
        assert!(script.contains("max-redirs"), "{shell} completions lack fetch's flags");
    }
    let out = run(&["completions", "tcsh"], b"");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn man_page_generates_with_a_section_for_every_subcommand() {
    let out = run(&["man"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH tcpkit 1"),
        "not roff: {}",
        &page[..page.len().min(200)]
    );
    for sub in subcommands().into_iter().filter(|s| s != "help") {
        assert!(page.contains(&format!(".TH tcpkit-{sub} 1")), "no page for {sub}");
    }
    assert!(page.contains("connect\\-timeout"), "flags are documented");
}

#[test]
fn color_flag_decides_colour_in_clap_messages_and_serve_logs() {
    let esc = |b: &[u8]| b.contains(&0x1b);
    let out = run(&["--color", "always", "no-such-command"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(esc(&out.stderr), "--color always: clap's error is coloured: {}", show(&out));
    let out = run(&["--color=never", "no-such-command"], b"");
    assert!(!esc(&out.stderr), "--color never: {}", show(&out));

    // serve's text log lines: coloured when asked to, even into a pipe; plain
    // with --color never. (Auto into a pipe is plain: tested in the unit tests.)
    for (flag, want) in [("always", true), ("never", false)] {
        let mut child = tcpkit()
            .args(["serve", "--listen", "127.0.0.1:0", "--color", flag])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let read = std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stderr.take().unwrap()),
            &mut line,
        );
        let _ = child.kill();
        let _ = child.wait();
        assert!(read.is_ok_and(|n| n > 0), "serve logged nothing");
        assert_eq!(line.contains('\x1b'), want, "--color {flag}: {line:?}");
    }
}
