//! nginx (Debian nginx-light, and libnginx-mod-stream for `stream`) in the
//! foreground for the interop tests: started on a configuration the test
//! wrote to `DIR/nginx.conf`, with `DIR` as its prefix and `DIR/error.log` as
//! its error log, so nothing outside the test's temporary directory is used.
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Where Debian's nginx lives.
pub const NGINX: &str = "/usr/sbin/nginx";
/// nginx's `stream` module (libnginx-mod-stream), for `load_module`.
pub const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// Start nginx on `dir/nginx.conf`; the caller waits for it to listen and
/// kills it.
pub fn spawn(dir: &Path) -> Child {
    Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (Debian nginx-light)")
}
