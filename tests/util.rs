//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each command's module uses a different subset.

use std::path::PathBuf;
use std::process::Command;

/// Path of the `tcpkit` binary built for these tests.
pub fn tcpkit_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tcpkit"))
}

/// A `Command` for the `tcpkit` binary with `RUST_LOG` cleared, so the
/// developer's environment cannot change what a test sees.
pub fn tcpkit() -> Command {
    let mut cmd = Command::new(tcpkit_bin());
    cmd.env_remove("RUST_LOG");
    cmd
}
