//! The hello protocol as pure functions of bytes: the greeting, the reply
//! template and the quit word. Lines are bytes: no UTF-8 is required of them.
//!
//! Not for: framing (see `framing`) or I/O (see `conn`).

/// The reply template (`--reply`), split at each `{}`: literal parts between
/// the places where the line goes. The one implementation: `tcpkit serve`
/// renders replies with it and `tcpkit bench` builds its expectations with it,
/// so the two cannot disagree on what a template means. `Hello, {}!` is `["Hello, ", "!"]`; a template without `{}`
/// is one literal part and ignores the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Vec<u8>>,
}

impl Template {
    /// Split `template` at every `{}`.
    pub fn new(template: &str) -> Self {
        Template { parts: template.split("{}").map(|p| p.as_bytes().to_vec()).collect() }
    }

    /// Append the reply to `line`, with its `\n`, to `out`.
    #[inline]
    pub fn render(&self, line: &[u8], out: &mut Vec<u8>) {
        let (last, rest) = self.parts.split_last().expect("split yields at least one part");
        for part in rest {
            out.extend_from_slice(part);
            out.extend_from_slice(line);
        }
        out.extend_from_slice(last);
        out.push(b'\n');
    }

    /// Length of the reply to a line of `line_len` bytes, `\n` included.
    pub fn reply_len(&self, line_len: usize) -> usize {
        self.parts.iter().map(Vec::len).sum::<usize>() + (self.parts.len() - 1) * line_len + 1
    }
}

/// What the server says, fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// Sent on accept, `\n` included; empty for none.
    pub greeting: Vec<u8>,
    /// The reply to each line.
    pub reply: Template,
    /// The line that closes the connection.
    pub quit: Vec<u8>,
}

impl Protocol {
    /// A protocol from the command line's texts; an empty greeting sends nothing.
    pub fn new(greeting: &str, reply: &str, quit: &str) -> Self {
        let greeting = if greeting.is_empty() { Vec::new() } else { format!("{greeting}\n").into_bytes() };
        Protocol { greeting, reply: Template::new(reply), quit: quit.as_bytes().to_vec() }
    }

    /// Whether `line` (already without its line ending) is the quit word.
    #[inline]
    pub fn is_quit(&self, line: &[u8]) -> bool {
        line == self.quit.as_slice()
    }
}

/// The line sent to a client over `--max-connections`.
pub const BUSY: &[u8] = b"ERR server busy\n";

/// The line sent before closing on an over-long line.
pub fn line_too_long(limit: usize) -> Vec<u8> {
    format!("ERR line too long (limit {limit} bytes)\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(t: &str, line: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Template::new(t).render(line, &mut out);
        out
    }

    #[test]
    fn default_template_wraps_the_line() {
        assert_eq!(reply("Hello, {}!", b"Michael"), b"Hello, Michael!\n");
        assert_eq!(Template::new("Hello, {}!").reply_len(7), 16);
    }

    #[test]
    fn bytes_pass_through_untouched() {
        assert_eq!(reply("Hello, {}!", b"\0\xff\xfe"), b"Hello, \0\xff\xfe!\n");
    }

    #[test]
    fn template_without_placeholder_ignores_the_line_and_repeats_work() {
        assert_eq!(reply("pong", b"ping"), b"pong\n");
        assert_eq!(reply("{}{}", b"ab"), b"abab\n");
        assert_eq!(Template::new("{}{}").reply_len(2), 5);
        assert_eq!(reply("{}", b""), b"\n");
    }

    #[test]
    fn greeting_gets_a_newline_and_empty_means_none() {
        assert_eq!(Protocol::new("Welcome!", "{}", "exit").greeting, b"Welcome!\n");
        assert!(Protocol::new("", "{}", "exit").greeting.is_empty());
    }

    #[test]
    fn quit_is_an_exact_match() {
        let p = Protocol::new("", "{}", "exit");
        assert!(p.is_quit(b"exit"));
        assert!(!p.is_quit(b"exit "));
        assert!(!p.is_quit(b"EXIT"));
    }

    // Tests that kill the mutants scripts/mutants found alive (see TESTING.md).

    #[test]
    fn line_too_long_and_busy_are_the_documented_lines() {
        assert_eq!(line_too_long(65536), b"ERR line too long (limit 65536 bytes)\n");
        assert_eq!(BUSY, b"ERR server busy\n");
    }

    #[test]
    fn reply_len_is_the_rendered_length_for_every_template() {
        for t in ["Hello, {}!", "{}", "pong", "{}{}", "a{}b{}c", ""] {
            for line in [&b""[..], b"x", b"Michael"] {
                assert_eq!(Template::new(t).reply_len(line.len()), reply(t, line).len(), "{t:?} {line:?}");
            }
        }
    }

    #[test]
    fn quit_word_is_kept_as_given() {
        let p = Protocol::new("hi", "{}", "bye");
        assert_eq!(p.quit, b"bye");
        assert!(p.is_quit(b"bye") && !p.is_quit(b"exit"));
    }
}
