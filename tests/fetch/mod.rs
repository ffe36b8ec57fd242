//! Integration tests of `tcpkit fetch`: the binary against servers started here
//! (hyper, a scripted raw socket, rustls), checking exit codes, output and files.

mod curl_compat;
mod errors;
#[cfg(feature = "interop")]
mod interop;
mod multi;
mod output;
mod proxy;
mod redirects;
mod requests;
mod retry;
pub(crate) mod servers;
mod tls;
pub(crate) mod trace;
#[cfg(feature = "interop")]
mod trace_wire;
mod upload;

use std::path::Path;
use std::process::Output;

use crate::util::tcpkit;

/// Run `tcpkit fetch ARGS...` in `dir` (the current directory when `None`).
pub fn fetch_in(dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = tcpkit();
    cmd.arg("fetch").args(args);
    // The tests choose their proxies: none from the environment.
    for var in ["http_proxy", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"] {
        cmd.env_remove(var);
    }
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    servers::run(cmd)
}

/// Run `tcpkit fetch ARGS...`.
pub fn fetch(args: &[&str]) -> Output {
    fetch_in(None, args)
}

/// The exit code, stdout and stderr (lossy) of a run.
pub fn parts(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
