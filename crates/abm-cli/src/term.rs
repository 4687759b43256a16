//! Printing human-readable output to stdout.
//!
//! Two rules (issue 11): a closed pipe (`abm review list | head -1`) is an `io::Error` of kind
//! `BrokenPipe` that `main` turns into success, never a panic as `println!` would; and text
//! that comes from data (account names, comments, rejected records…) may hold terminal escape
//! sequences, so control characters are shown escaped (`\x1b`, `\u{9b}`) instead of sent to
//! the terminal. Line breaks and tabs pass. `--json` output goes through `serde_json` instead
//! (valid JSON, control characters escaped by JSON's own rules).

use std::borrow::Cow;
use std::io::{self, Write};

/// Whether `c` is a control character a terminal may act on: C0 except `\n` and `\t`, DEL,
/// and C1 (U+0080–U+009F, which some terminals read as 8-bit CSI/OSC).
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// `s` with every control character a terminal could act on written as an escape: `\x1b`,
/// `\r`, `\x7f`, `\u{9b}`.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if c == '\r' {
            out.push_str("\\r");
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// Write `s` to stdout with [`escape_controls`]; a closed pipe is an error, not a panic.
pub fn print_str(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(escape_controls(s).as_bytes())
}

/// `print!` for human-readable output: escapes control characters, returns `io::Result`.
macro_rules! out {
    ($($t:tt)*) => { $crate::term::print_str(&format!($($t)*)) };
}

/// `println!` for human-readable output: escapes control characters, returns `io::Result`.
macro_rules! outln {
    () => { $crate::term::print_str("\n") };
    ($($t:tt)*) => { $crate::term::print_str(&(format!($($t)*) + "\n")) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("Acme Corp"), "Acme Corp");
        assert!(matches!(escape_controls("a\tb\nc"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("\x1b[2JEvil"), "\\x1b[2JEvil");
        assert_eq!(escape_controls("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        assert_eq!(escape_controls("a\rb\x7f\u{9b}c"), "a\\rb\\x7f\\u{9b}c");
        assert_eq!(escape_controls("Zürich — ok"), "Zürich — ok");
    }
}
