//! The repository stands alone: no tracked text file points outside the
//! checkout (the `shared` folder beside it, with its `spec` and `corpus`) or
//! cites documents that are not in it (numbered "gap"s, section signs, the
//! upstream description's file names). Reference defects are cited by
//! their ids in `docs/compatibility.md`; format facts by the `wire` crate.
//!
//! The needles are assembled at run time so that this file does not match
//! itself.

use integration_tests::workspace_root;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Tracked files, from `git ls-files`; without git (an unpacked archive),
/// every file under the root except build output and hidden folders.
fn files(root: &Path) -> Vec<PathBuf> {
    if let Ok(out) = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
    {
        if out.status.success() {
            return out
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
                .collect();
        }
    }
    let mut found = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let rel = dir.join(&*name);
            match e.file_type() {
                Ok(t) if t.is_dir() && name != "target" && !name.starts_with('.') => dirs.push(rel),
                Ok(t) if t.is_file() => found.push(rel),
                _ => {}
            }
        }
    }
    found
}

/// What a line cites that is not in the repository, if anything.
fn outside_citation(line: &str) -> Option<String> {
    let lower = line.to_lowercase();
    let plain = [
        format!("..{}shared", '/'),
        format!("shared/{}", "spec"),
        format!("shared/{}", "corpus"),
        '\u{a7}'.to_string(),
    ];
    if let Some(n) = plain.iter().find(|n| lower.contains(n.as_str())) {
        return Some(n.clone());
    }
    let word_start = |at: usize| {
        at == 0
            || !lower[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    for doc in ["wire-format", "ingester", "reporter", "ui"] {
        let needle = format!("{doc}.md");
        for (at, _) in lower.match_indices(&needle) {
            if word_start(at) {
                return Some(needle);
            }
        }
    }
    for word in ["gap", "gaps"] {
        let needle = format!("{word} ");
        for (at, _) in lower.match_indices(&needle) {
            let after = &lower[at + needle.len()..];
            if word_start(at) && after.starts_with(|c: char| c.is_ascii_digit()) {
                return Some(format!("{needle}<n>"));
            }
        }
    }
    None
}

/// Every tracked text file (binary fixtures such as captures and fuzz
/// seeds are skipped), as (path relative to the root, text).
fn text_files(root: &Path) -> Vec<(PathBuf, String)> {
    let texts: Vec<_> = files(root)
        .into_iter()
        // CI plumbing is not part of the project's text.
        .filter(|rel| !rel.starts_with(".ci"))
        .filter_map(|rel| {
            let text = String::from_utf8(std::fs::read(root.join(&rel)).ok()?).ok()?;
            Some((rel, text))
        })
        .collect();
    assert!(
        texts.len() > 50,
        "only {} text files found under {}",
        texts.len(),
        root.display()
    );
    texts
}

#[test]
fn citations_stay_inside_the_repository() {
    let mut bad = Vec::new();
    for (rel, text) in text_files(&workspace_root()) {
        for (n, line) in text.lines().enumerate() {
            if let Some(what) = outside_citation(line) {
                bad.push(format!(
                    "{}:{}: {what}: {}",
                    rel.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} line(s) cite documents outside the repository (cite docs/compatibility.md, \
         docs/module.md, tests/fixtures/corpus/README.md or the wire crate instead):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The ids (`C12`, `K3`) a line names.
fn ids_in(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    let mut ids = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        let starts = (c == b'C' || c == b'K') && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            continue;
        }
        let digits = b[i + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
        let end = i + 1 + digits;
        if digits > 0 && b.get(end).is_none_or(|d| !d.is_ascii_alphanumeric()) {
            ids.push(line[i..end].to_string());
        }
    }
    ids
}

/// Code and docs cite reference defects as "compatibility.md C12"; each id
/// they name must be a row of docs/compatibility.md.
#[test]
fn cited_compatibility_ids_exist() {
    let root = workspace_root();
    let doc = std::fs::read_to_string(root.join("docs/compatibility.md")).unwrap();
    let defined: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .flat_map(|l| ids_in(l.split(' ').next().unwrap_or("")))
        .collect();
    assert!(defined.len() > 40, "rows found: {defined:?}");
    let mut bad = Vec::new();
    let mut cited = 0;
    for (rel, text) in text_files(&root) {
        if rel == Path::new("docs/compatibility.md") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            if !line.contains("compatibility.md") {
                continue;
            }
            for id in ids_in(line) {
                cited += 1;
                if !defined.contains(&id) {
                    bad.push(format!(
                        "{}:{}: {id}: {}",
                        rel.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(cited > 10, "only {cited} cited ids found");
    assert!(
        bad.is_empty(),
        "ids not in docs/compatibility.md:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_finds_each_form() {
    let sect = '\u{a7}';
    for line in [
        format!("see ..{}shared/{}", '/', "corpus"),
        format!("(`wire-format{}` {sect}8)", ".md"),
        format!("ui {sect}A8.4"),
        format!("(`{}.md` 7.2)", "ingester"),
        format!("(reporter{})", ".md"),
        format!("// see ui{}", ".md"),
        format!("fixes {} 4", "gap"),
        format!("(reference {} 29)", "Gap"),
        format!("{} 26-34", "gaps"),
    ] {
        assert!(outside_citation(&line).is_some(), "missed: {line}");
    }
    for line in [
        "sequence gaps over all kinds",
        "gap:14px; padding:6px",
        "let gap = (ahead - 1) as u64;",
        "docs/module.md and docs/compatibility.md",
        &format!("see gui{}", ".md"),
        "a gap in the numbers is a lost datagram",
    ] {
        assert!(outside_citation(line).is_none(), "false hit: {line}");
    }
    assert_eq!(
        ids_in("(docs/compatibility.md C24-C32, K9); CC1 C2x"),
        ["C24", "C32", "K9"]
    );
}
