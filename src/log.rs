//! Logging set-up shared by the commands: tracing to stderr, text or JSON.
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Whether log lines carry colour codes, as the caller decided (`--color`,
/// `NO_COLOR`); unset, colour only for a terminal.
static ANSI: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Decide once, before [`init`], whether log lines are coloured.
pub fn set_ansi(on: bool) {
    let _ = ANSI.set(on);
}

/// Install the global subscriber: `RUST_LOG` wins, else `quiet` gives warnings
/// only and each `verbose` step one more level below info. Calling it twice is
/// harmless (the second call does nothing).
pub fn init(quiet: bool, verbose: u8, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour codes only for a terminal: piped into a file or a log collector
    // they would be noise in every line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            ANSI.get().copied().unwrap_or_else(|| std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
