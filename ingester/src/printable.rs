//! Making datagram-supplied strings safe to print on a terminal.
//!
//! A hostname, process group, path or shutdown reason comes from whoever can
//! write to the telemetry socket. Printed raw, `ESC ] 0 ; … BEL` retitles the
//! operator's terminal and `ESC [ 2 J` clears it; a bidi override makes text
//! read differently from what it is. Every text output passes such strings
//! through [`printable`] and never prints them any other way: `dump`'s text
//! format per value, `top` where a string enters its model (so its views,
//! `--once` and `--once --json` alike), the label values of `/metrics`
//! (read with `curl` as often as by Prometheus). `dump --json` keeps the
//! exact strings for programs, but not raw: JSON escapes C0 controls
//! itself, and [`json_printable`] writes the other unsafe characters as
//! `\uNNNN` escapes, which a JSON reader turns back into the same string.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal as is: C0 controls (tab and
/// newline too: they would forge columns and lines), DEL, C1 controls
/// (`U+009B` is a one-character CSI), the line and paragraph separators and
/// the bidirectional formatting characters.
pub(crate) fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}' | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_unsafe`] character written as a visible escape:
/// `\xNN` up to `U+00FF`, `\u{NNNN}` above. Borrows when nothing needs
/// escaping (the usual case).
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c) {
            out.push(c);
        } else if (c as u32) <= 0xff {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// JSON text `json` with every [`is_unsafe`] character left raw by the
/// JSON writer (DEL, C1 controls, the separators and bidi characters; C0
/// controls are escaped already) written as a `\uNNNN` escape: the same
/// JSON value, safe to print. Such characters occur only inside strings,
/// where the escape means the character itself.
pub(crate) fn json_printable(json: String) -> String {
    if !json.chars().any(is_unsafe) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) {
            // Every unsafe character is in the Basic Multilingual Plane.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "web1.example.com",
            "app-grp",
            "/päth/ünïcode ✓",
            "a\\x1b",
        ] {
            assert!(matches!(printable(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(
            printable("\u{1b}]0;pwned\u{7}\u{1b}[2Jx"),
            "\\x1b]0;pwned\\x07\\x1b[2Jx"
        );
        assert_eq!(printable("a\tb\nc\r\0"), "a\\x09b\\x0ac\\x0d\\x00");
        assert_eq!(printable("\u{7f}\u{80}\u{9b}31m"), "\\x7f\\x80\\x9b31m");
        assert_eq!(
            printable("x\u{202e}gnp.exe\u{2066}\u{2028}\u{61c}"),
            "x\\u{202e}gnp.exe\\u{2066}\\u{2028}\\u{061c}"
        );
        // Neighbours of the ranges are printable.
        let near = " ~\u{a0}\u{2027}\u{202f}\u{2065}\u{206a}";
        assert!(matches!(printable(near), Cow::Borrowed(_)));
        for c in (0u32..=0x10ffff).filter_map(char::from_u32) {
            let s = c.to_string();
            let p = printable(&s);
            assert!(!p.chars().any(is_unsafe), "{c:?}");
            assert!(!p.chars().any(char::is_control), "{c:?}");
        }
    }

    #[test]
    fn json_keeps_the_string_and_escapes_what_json_leaves_raw() {
        let hostile =
            "\u{1b}]0;t\u{7}\u{7f}\u{85}\u{9b}2J\u{202e}\u{2028}\u{2066}\u{61c}é✓\\u0041\"";
        let json = serde_json::to_string(&serde_json::json!({ "k": hostile })).unwrap();
        assert!(
            json.chars().any(is_unsafe),
            "serde_json leaves C1 and bidi raw"
        );
        let safe = json_printable(json);
        assert!(!safe.chars().any(is_unsafe), "{safe}");
        assert!(safe.contains(r"\u009b2J\u202e"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["k"], hostile);
        let plain = r#"{"k":"web1 é✓"}"#.to_string();
        assert_eq!(json_printable(plain.clone()), plain);
    }
}
