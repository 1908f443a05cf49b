//! Client text made safe to keep and to log: bounded in length, escaped for logs.

use std::fmt;

/// The longest client text written to a log line, in characters.
pub(crate) const MAX_LOGGED_CHARS: usize = 64;

/// `text` cut to at most `max_chars` characters (on a character boundary).
pub(crate) fn clip(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Client text as a log field: at most [`MAX_LOGGED_CHARS`] characters, with newlines,
/// escape sequences and other control characters escaped, so no one can forge log lines
/// or colour a terminal. Log it with `%`.
pub(crate) fn loggable(text: &str) -> Loggable<'_> {
    Loggable {
        text: clip(text, MAX_LOGGED_CHARS),
        clipped: text.len() > clip(text, MAX_LOGGED_CHARS).len(),
    }
}

/// See [`loggable`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loggable<'a> {
    text: &'a str,
    clipped: bool,
}

impl fmt::Display for Loggable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}", self.text.escape_debug())?;
        if self.clipped {
            f.write_str("…")?;
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_on_character_boundaries() {
        assert_eq!(clip("ab", 5), "ab");
        assert_eq!(clip("äöü", 2), "äö");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn log_fields_are_escaped_and_bounded() {
        let forged = "ada\n2026-01-01 INFO signed in\u{1b}[31m";
        let logged = loggable(forged).to_string();
        assert!(
            !logged.contains('\n') && !logged.contains('\u{1b}'),
            "{logged}"
        );
        let long = "x".repeat(10_000);
        assert!(loggable(&long).to_string().chars().count() <= MAX_LOGGED_CHARS + 3);
    }
}
