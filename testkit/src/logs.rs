//! Log files: read what is there so far, show the tail, wait for a line.

use std::path::Path;

/// The file's text so far (lossy UTF-8; empty while it does not exist).
pub fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Waits until the log at `path` holds a line containing `needle`; returns
/// that line (the last such one). Panics after [`crate::PATIENCE`] with the
/// log's tail.
pub fn wait_for_log(path: &Path, needle: &str) -> String {
    crate::poll(&format!("{needle:?} in {}", path.display()), || {
        let text = read_lossy(path);
        match text.lines().rev().find(|l| l.contains(needle)) {
            Some(l) => Ok(l.to_string()),
            None => Err(format!("last lines:\n{}", last_lines(&text, 20))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_the_tail() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 3), "");
    }

    #[test]
    fn wait_for_log_finds_the_newest_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, "one ready\ntwo\nthree ready\n").unwrap();
        assert_eq!(wait_for_log(&p, "ready"), "three ready");
    }
}
