//! The command line: every command and flag, as clap derive structs.
//!
//! Each command's flags live in their own file beside this one, with parse tests.
//! Not for: behaviour. These types only describe what the user asked for.

mod bench;
mod connect;
pub mod duration;
mod fetch;
mod serve;

pub use crate::log::LogFormat;
pub use bench::{BenchArgs, Sources, Workload};
pub use connect::ConnectArgs;
pub use fetch::FetchArgs;
pub use serve::ServeArgs;

use std::io::{IsTerminal, Write};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::Failure;

/// tcpkit: see what really crosses a TCP socket.
#[derive(Debug, Parser)]
#[command(name = "tcpkit", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Colour in messages and logs: `auto` colours a terminal unless `NO_COLOR`
    /// is set (to anything but the empty string); `always` and `never` win over it.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = Color::Auto)]
    pub color: Color,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to colour a stream, given whether it is a terminal and the
    /// value of `NO_COLOR` (<https://no-color.org>: set and not empty disables).
    pub fn enabled(self, is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => is_terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// Whether to colour stderr (logs, clap's messages) in this process.
    pub fn stderr(self) -> bool {
        self.enabled(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref())
    }
}

/// Parse the process's arguments, with clap's own help and errors coloured as
/// `--color` and `NO_COLOR` say (clap knows the flag only after parsing, so it
/// is looked up in the raw arguments first). Exits on `--help` or a bad flag.
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let color = color_in(&args).unwrap_or(Color::Auto);
    let choice = match color {
        Color::Always => clap::ColorChoice::Always,
        Color::Never => clap::ColorChoice::Never,
        Color::Auto if color.stderr() => clap::ColorChoice::Always,
        Color::Auto => clap::ColorChoice::Never,
    };
    let matches = Cli::command().color(choice).get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The value of the last `--color WHEN` / `--color=WHEN` before a `--`, if valid.
fn color_in(args: &[std::ffi::OsString]) -> Option<Color> {
    let mut found = None;
    let mut it = args.iter().skip(1).map(|a| a.to_str());
    while let Some(arg) = it.next() {
        let value = match arg {
            Some("--") => break,
            Some("--color") => it.next().flatten(),
            Some(a) => a.strip_prefix("--color="),
            None => None,
        };
        if let Some(v) = value {
            found = Color::from_str(v, false).ok().or(found);
        }
    }
    found
}

/// Flags of `tcpkit completions`.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh or fish (also elvish, powershell).
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Write the completion script for `shell` to stdout.
pub fn completions(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "tcpkit", &mut out);
    write_stdout(&out)
}

/// Write the man page (roff) to stdout: tcpkit(1), then one section per command.
pub fn man() -> Result<(), Failure> {
    let mut out = Vec::new();
    let cmd = Cli::command();
    let render = |cmd: clap::Command, out: &mut Vec<u8>| {
        clap_mangen::Man::new(cmd).render(out).map_err(|e| Failure::new(1, format!("man: {e}")))
    };
    render(cmd.clone(), &mut out)?;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("tcpkit-{}", sub.get_name());
        render(sub.clone().display_name(name), &mut out)?;
    }
    write_stdout(&out)
}

/// Write all of `bytes` to stdout; a closed stdout is an error, not a panic.
fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes).and_then(|()| stdout.flush()).map_err(|e| Failure::new(1, format!("stdout: {e}")))
}

/// The four commands, and two that describe the command line itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hello server: greet, answer each line with `Hello, <line>!`, close on `exit`.
    Serve(ServeArgs),
    /// Connect to HOST PORT and copy stdin to the socket and the socket to stdout.
    Connect(ConnectArgs),
    /// Fetch a URL over HTTP/1.1 or HTTPS, with curl's flags and exit codes.
    Fetch(FetchArgs),
    /// Load-test a line-based TCP server, verifying every reply.
    Bench(BenchArgs),
    /// Print a shell completion script: `tcpkit completions bash > /etc/bash_completion.d/tcpkit`.
    Completions(CompletionsArgs),
    /// Print the man page (roff): `tcpkit man > tcpkit.1; man ./tcpkit.1`.
    Man,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn color_auto_follows_the_terminal_and_no_color_and_the_flag_wins() {
        use std::ffi::OsStr;
        assert!(Color::Auto.enabled(true, None));
        assert!(Color::Auto.enabled(true, Some(OsStr::new(""))));
        assert!(!Color::Auto.enabled(true, Some(OsStr::new("1"))));
        assert!(!Color::Auto.enabled(false, None));
        assert!(Color::Always.enabled(false, Some(OsStr::new("1"))));
        assert!(!Color::Never.enabled(true, None));
    }

    #[test]
    fn color_flag_is_found_before_parsing_wherever_it_is() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(color_in(&args(&["tcpkit", "--color", "never", "serve"])), Some(Color::Never));
        assert_eq!(color_in(&args(&["tcpkit", "serve", "--color=always"])), Some(Color::Always));
        assert_eq!(color_in(&args(&["tcpkit", "serve", "--color=bad"])), None);
        assert_eq!(color_in(&args(&["tcpkit", "connect", "--", "--color=always"])), None);
        assert_eq!(color_in(&args(&["tcpkit", "serve"])), None);
        let cli = Cli::try_parse_from(["tcpkit", "serve", "--color", "never"]).unwrap();
        assert_eq!(cli.color, Color::Never);
    }
}
