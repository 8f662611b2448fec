//! Terminal colour for pipe's own messages: decided once per process from `--color`, `NO_COLOR`
//! and whether each stream is a terminal, then applied by small helpers (`ok`, `warn`, `err`,
//! `note`, `bold`) that return a [`Styled`] value to print.
//!
//! Rule: `--color always` colours, `--color never` does not; `--color auto` (the default)
//! colours a stream only when it is a terminal and `NO_COLOR` is unset or empty
//! (<https://no-color.org>: an explicit command-line flag overrides the variable).

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// The `--color` flag.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when the stream is a terminal and `NO_COLOR` is not set.
    #[default]
    Auto,
    /// Always colour (even into a pipe or file).
    Always,
    /// Never colour.
    Never,
}

/// The output stream a message is printed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether to colour one stream: pure, so the rule is testable without a terminal.
pub fn decide(choice: ColorChoice, no_color: Option<&str>, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && no_color.is_none_or(str::is_empty),
    }
}

static ENABLED: OnceLock<(bool, bool)> = OnceLock::new();

/// Fixes the colour decision for this process (called once by `cli::main`; later calls are
/// ignored). Without a call, colour follows `--color auto`.
pub fn init(choice: ColorChoice) {
    let _ = ENABLED.set(compute(choice));
}

fn compute(choice: ColorChoice) -> (bool, bool) {
    let nc = std::env::var("NO_COLOR").ok();
    (
        decide(choice, nc.as_deref(), std::io::stdout().is_terminal()),
        decide(choice, nc.as_deref(), std::io::stderr().is_terminal()),
    )
}

/// Whether messages on `stream` are coloured.
pub fn enabled(stream: Stream) -> bool {
    let (out, err) = *ENABLED.get_or_init(|| compute(ColorChoice::Auto));
    match stream {
        Stream::Stdout => out,
        Stream::Stderr => err,
    }
}

/// A piece of text with its colour role and the stream it will be printed on; `Display`
/// writes the ANSI codes only when that stream is coloured.
#[derive(Clone, Debug)]
pub struct Styled<'a> {
    text: &'a str,
    sgr: &'static str,
    stream: Stream,
}

impl<'a> Styled<'a> {
    /// The same text, for printing on stdout.
    pub fn stdout(mut self) -> Self {
        self.stream = Stream::Stdout;
        self
    }

    /// The same text, for printing on stderr.
    pub fn stderr(mut self) -> Self {
        self.stream = Stream::Stderr;
        self
    }
}

impl fmt::Display for Styled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if enabled(self.stream) {
            write!(f, "\x1b[{}m{}\x1b[0m", self.sgr, self.text)
        } else {
            f.write_str(self.text)
        }
    }
}

/// Green: success ("up to date", "ran"); for stdout (`.stderr()` to change).
pub fn ok(text: &str) -> Styled<'_> {
    Styled {
        text,
        sgr: "32",
        stream: Stream::Stdout,
    }
}

/// Yellow: a warning or something that will run; for stderr (`.stdout()` to change).
pub fn warn(text: &str) -> Styled<'_> {
    Styled {
        text,
        sgr: "33",
        stream: Stream::Stderr,
    }
}

/// Bold red: an error or a failed stage; for stderr (`.stdout()` to change).
pub fn err(text: &str) -> Styled<'_> {
    Styled {
        text,
        sgr: "1;31",
        stream: Stream::Stderr,
    }
}

/// Dim: a side note ("using pipelines/ci.yaml"); for stderr (`.stdout()` to change).
pub fn note(text: &str) -> Styled<'_> {
    Styled {
        text,
        sgr: "2",
        stream: Stream::Stderr,
    }
}

/// Bold: a heading or a name; for stdout (`.stderr()` to change).
pub fn bold(text: &str) -> Styled<'_> {
    Styled {
        text,
        sgr: "1",
        stream: Stream::Stdout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_and_flags() {
        use ColorChoice::*;
        assert!(decide(Auto, None, true));
        assert!(!decide(Auto, None, false));
        assert!(!decide(Auto, Some("1"), true));
        assert!(decide(Auto, Some(""), true), "an empty NO_COLOR is unset");
        assert!(
            decide(Always, Some("1"), false),
            "the flag overrides NO_COLOR"
        );
        assert!(!decide(Never, None, true));
    }
}
