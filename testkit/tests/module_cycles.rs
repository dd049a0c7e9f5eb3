//! No import cycles between modules (docs/architecture rule of the
//! conventions: layers import downwards only, no two modules import each
//! other).
//!
//! For every crate root of the workspace (`*/src/lib.rs`, `*/src/main.rs`,
//! `*/examples/*/main.rs`, `*/benches/*/main.rs`) this follows the `mod`
//! declarations to the crate's module tree, reads every path that starts
//! with `crate::`, `super::` or `self::` (in `use` statements, with their
//! `{…}` groups, and in expressions), and draws an edge between the two
//! sibling modules under which the referring and the referred module part.
//! A cycle among the siblings of any module fails the test with one
//! referring line per edge.
//!
//! Test modules (`tests`, and `mod tests { … }` blocks) are left out: a
//! test may look at any part of its crate without making the crate's
//! modules depend on each other. Comments, strings and character literals
//! are blanked before reading, so a doc link is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// Edges left out of the check, each waiting for a move in files that are
/// being changed elsewhere: (crate root, parent module, from, to). The
/// test fails when one of them is no longer there, so the list only
/// shrinks. Empty: every module imports downwards only.
const KNOWN: &[(&str, &str, &str, &str)] = &[];

/// Where an edge was seen: file and line.
type Witness = (PathBuf, usize);

struct CrateTree {
    root: PathBuf,
    /// Every module of the crate (the root is `[]`).
    modules: BTreeSet<ModPath>,
    /// (referring module, referred module) -> first place seen.
    refs: BTreeMap<(ModPath, ModPath), Witness>,
}

#[test]
fn no_import_cycles_between_modules() {
    let ws = testkit::workspace_root();
    let roots = crate_roots(&ws);
    assert!(
        roots.len() >= 7,
        "found only {} crate roots under {}: {roots:?}",
        roots.len(),
        ws.display()
    );
    let mut failures = Vec::new();
    let mut known_seen = BTreeSet::new();
    for root in roots {
        let tree = read_crate(&root);
        assert!(!tree.modules.is_empty());
        let (found, seen) = cycles(&tree, &ws, KNOWN);
        failures.extend(found);
        known_seen.extend(seen);
    }
    for k in KNOWN {
        if !known_seen.contains(k) {
            failures.push(format!("{k:?} is no longer there: take it out of KNOWN"));
        }
    }
    assert!(
        failures.is_empty(),
        "import cycles between modules:\n{}",
        failures.join("\n")
    );
}

/// The check itself finds a cycle where there is one, and none where the
/// imports go one way only.
#[test]
fn the_check_finds_a_planted_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("a")).unwrap();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    fs::write(
        src.join("a/mod.rs"),
        "mod x;\nmod y;\nuse crate::b::B; // crate::c\n",
    )
    .unwrap();
    fs::write(src.join("a/x.rs"), "use super::y::Y;\n").unwrap();
    fs::write(
        src.join("a/y.rs"),
        "pub struct Y;\nconst S: &str = \"super::x\";\n",
    )
    .unwrap();
    fs::write(
        src.join("b.rs"),
        "use crate::{c::C, a::{x}};\n#[cfg(test)]\nmod tests { use crate::a::y; }\n",
    )
    .unwrap();
    fs::write(src.join("c.rs"), "pub struct C;\n").unwrap();
    let tree = read_crate(&src.join("lib.rs"));
    assert!(tree
        .modules
        .contains(&vec!["a".to_string(), "x".to_string()]));
    let (found, _) = cycles(&tree, src, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("a -> b") && found[0].contains("b -> a"),
        "{found:?}"
    );

    // Without b's import of a, there is none (the comment, the string and
    // the test module's import are not imports).
    fs::write(
        src.join("b.rs"),
        "use crate::c::C;\n#[cfg(test)]\nmod tests { use crate::a::y; }\n",
    )
    .unwrap();
    let tree = read_crate(&src.join("lib.rs"));
    assert_eq!(cycles(&tree, src, &[]).0, Vec::<String>::new());
}

fn crate_roots(ws: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let mut members: Vec<_> = fs::read_dir(ws)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    members.sort();
    for m in members {
        for f in ["src/lib.rs", "src/main.rs"] {
            if m.join(f).is_file() {
                roots.push(m.join(f));
            }
        }
        for sub in ["examples", "benches"] {
            let Ok(rd) = fs::read_dir(m.join(sub)) else {
                continue;
            };
            let mut dirs: Vec<_> = rd
                .map(|e| e.unwrap().path().join("main.rs"))
                .filter(|p| p.is_file())
                .collect();
            dirs.sort();
            roots.extend(dirs);
        }
    }
    roots
}

fn read_crate(root: &Path) -> CrateTree {
    let mut tree = CrateTree {
        root: root.to_path_buf(),
        modules: BTreeSet::new(),
        refs: BTreeMap::new(),
    };
    let mut raw_refs = Vec::new();
    read_module_file(root, Vec::new(), true, &mut tree.modules, &mut raw_refs);
    for (from, path, witness) in raw_refs {
        // The referred module: the longest prefix of the path that is one.
        let to = (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| tree.modules.contains(p))
            .unwrap_or_default();
        tree.refs.entry((from, to)).or_insert(witness);
    }
    tree
}

/// Reads one module file: records the module (and its inline modules),
/// follows its `mod name;` declarations and collects its paths, resolved
/// to absolute module paths.
fn read_module_file(
    file: &Path,
    module: ModPath,
    owns_dir: bool,
    modules: &mut BTreeSet<ModPath>,
    refs: &mut Vec<(ModPath, ModPath, Witness)>,
) {
    let text =
        blank(&fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display())));
    // Children of this file live in its own directory (mod.rs, lib.rs,
    // main.rs) or in a directory named after it.
    let child_dir = if owns_dir {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    modules.insert(module.clone());
    let tokens = tokenize(&text);
    // Inline modules: (name, brace depth at which it closes).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let current = |inline: &[(String, usize)]| -> ModPath {
        let mut p = module.clone();
        p.extend(inline.iter().map(|(n, _)| n.clone()));
        p
    };
    let in_tests = |p: &ModPath| p.iter().any(|s| s == "tests" || s == "test");
    while i < tokens.len() {
        let (tok, line) = (&tokens[i].0, tokens[i].1);
        match tok.as_str() {
            "{" => depth += 1,
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if i + 2 < tokens.len() && is_ident(&tokens[i + 1].0) => {
                let name = tokens[i + 1].0.clone();
                let mut child = current(&inline);
                child.push(name.clone());
                if tokens[i + 2].0 == "{" {
                    modules.insert(child);
                    depth += 1;
                    inline.push((name, depth));
                    i += 3;
                    continue;
                }
                if tokens[i + 2].0 == ";" && inline.is_empty() {
                    let (a, b) = (
                        child_dir.join(format!("{name}.rs")),
                        child_dir.join(&name).join("mod.rs"),
                    );
                    let path_attr = path_attribute(&tokens[..i]);
                    let (f, owns) = match path_attr {
                        Some(p) => {
                            let f = file.parent().unwrap().join(p);
                            let owns = f.file_name().is_some_and(|n| n == "mod.rs");
                            (f, owns)
                        }
                        None if a.is_file() => (a, false),
                        None => (b, true),
                    };
                    if !in_tests(&child) {
                        read_module_file(&f, child, owns, modules, refs);
                    } else {
                        modules.insert(child);
                    }
                }
            }
            "in" if i > 0 && tokens[i - 1].0 == "(" => {
                // `pub(in crate::x)` names a visibility, not an import.
                i += 1;
                while i < tokens.len() && tokens[i].0 != ")" {
                    i += 1;
                }
            }
            "crate" | "super" | "self" if tokens.get(i + 1).is_some_and(|t| t.0 == "::") => {
                if i > 0 && (tokens[i - 1].0 == "$" || tokens[i - 1].0 == "::") {
                    i += 1;
                    continue;
                }
                let here = current(&inline);
                let mut paths = Vec::new();
                i = read_path(&tokens, i, Vec::new(), &mut paths);
                if in_tests(&here) {
                    continue;
                }
                for p in paths {
                    if let Some(abs) = resolve(&here, &p) {
                        refs.push((here.clone(), abs, (file.to_path_buf(), line)));
                    }
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

/// `#[path = "…"]` directly before a `mod` declaration.
fn path_attribute(before: &[(String, usize)]) -> Option<String> {
    let n = before.len();
    // `# [ path = "…" ]`: the blanking kept this string's text.
    if n >= 6 && before[n - 4].0 == "path" && before[n - 3].0 == "=" && before[n - 1].0 == "]" {
        return Some(before[n - 2].0.trim_matches('"').to_string());
    }
    None
}

/// Reads a path starting at `tokens[i]`, expanding `{…}` groups; returns
/// the index after it.
fn read_path(
    tokens: &[(String, usize)],
    mut i: usize,
    prefix: ModPath,
    out: &mut Vec<ModPath>,
) -> usize {
    let mut path = prefix;
    while let Some((t, _)) = tokens.get(i) {
        if t == "{" {
            i += 1;
            loop {
                match tokens.get(i).map(|t| t.0.as_str()) {
                    None => return i,
                    Some("}") => return i + 1,
                    Some(",") => i += 1,
                    Some(_) => i = read_path(tokens, i, path.clone(), out),
                }
            }
        }
        if !is_ident(t) && t != "*" {
            break;
        }
        path.push(t.clone());
        i += 1;
        if tokens.get(i).is_some_and(|t| t.0 == "::") {
            i += 1;
            continue;
        }
        // `name as alias`
        if tokens.get(i).is_some_and(|t| t.0 == "as") {
            i += 2;
        }
        break;
    }
    out.push(path);
    i
}

/// An absolute module path from a path as written in module `here`.
fn resolve(here: &ModPath, path: &ModPath) -> Option<ModPath> {
    let mut segs = path.iter().peekable();
    let mut abs = match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("self") => {
            segs.next();
            here.clone()
        }
        Some("super") => here.clone(),
        _ => return None,
    };
    while segs.peek().is_some_and(|s| *s == "super") {
        segs.next();
        abs.pop()?;
    }
    abs.extend(segs.filter(|s| *s != "*" && *s != "self").cloned());
    Some(abs)
}

/// The cycles among the children of every module, one string each, with
/// the `known` edges left out; and the known edges that were seen.
type Known = (&'static str, &'static str, &'static str, &'static str);
fn cycles(tree: &CrateTree, ws: &Path, known: &[Known]) -> (Vec<String>, Vec<Known>) {
    let root = tree.root.strip_prefix(ws).unwrap_or(&tree.root);
    // parent -> child edges between its children, with a witness each.
    let mut graphs: BTreeMap<ModPath, BTreeMap<(String, String), &Witness>> = BTreeMap::new();
    let mut seen = Vec::new();
    for ((from, to), w) in &tree.refs {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue; // one contains the other
        }
        let parent = if common == 0 {
            "crate".to_string()
        } else {
            from[..common].join("::")
        };
        if let Some(k) = known.iter().find(|k| {
            Path::new(k.0) == root && k.1 == parent && k.2 == from[common] && k.3 == to[common]
        }) {
            seen.push(*k);
            continue;
        }
        graphs
            .entry(from[..common].to_vec())
            .or_default()
            .entry((from[common].clone(), to[common].clone()))
            .or_insert(w);
    }
    let mut found = Vec::new();
    for (parent, edges) in graphs {
        let mut adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (a, b) in edges.keys() {
            adj.entry(a).or_default().push(b);
        }
        for scc in strongly_connected(&adj) {
            if scc.len() < 2 {
                continue;
            }
            let within: Vec<String> = edges
                .iter()
                .filter(|((a, b), _)| scc.contains(&a.as_str()) && scc.contains(&b.as_str()))
                .map(|((a, b), (f, l))| {
                    let f = f.strip_prefix(ws).unwrap_or(f);
                    format!("    {a} -> {b} ({}:{l})", f.display())
                })
                .collect();
            found.push(format!(
                "{} module `{}`: {}\n{}",
                root.display(),
                if parent.is_empty() {
                    "crate".to_string()
                } else {
                    parent.join("::")
                },
                scc.join(", "),
                within.join("\n")
            ));
        }
    }
    (found, seen)
}

/// Tarjan's strongly connected components.
fn strongly_connected<'a>(adj: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Vec<&'a str>> {
    struct T<'a, 'b> {
        adj: &'b BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(t: &mut T<'a, '_>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for &w in t.adj.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w);
                if w == v {
                    break;
                }
            }
            scc.sort();
            t.out.push(scc);
        }
    }
    let mut t = T {
        adj,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in adj.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && c.all(|c| c.is_alphanumeric() || c == '_')
}

/// Identifiers, `::` and single punctuation characters, with their line.
/// A blanked string literal stays one token `"…"` so `#[path]` can be read.
fn tokenize(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let b: Vec<char> = text.chars().collect();
    let (mut i, mut line) = (0, 1);
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((b[s..i].iter().collect(), line));
        } else if c == '"' {
            let s = i;
            i += 1;
            while i < b.len() && b[i] != '"' {
                i += 1;
            }
            i += 1;
            out.push((b[s..i.min(b.len())].iter().collect(), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push(("::".into(), line));
            i += 2;
        } else {
            out.push((c.to_string(), line));
            i += 1;
        }
    }
    out
}

/// The source with comments blanked and string and character literals
/// emptied (`"…"` keeps its quotes and, for `#[path]`, its text), newlines
/// kept so lines still count.
fn blank(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_is_ident(&b, i) {
            // raw string r"…" / r#"…"#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            out.push('"');
            loop {
                match b.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| b.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some('\n') => out.push('\n'),
                    _ => {}
                }
                j += 1;
            }
            out.push('"');
            i = j;
        } else if c == '"' {
            // Keep the text of `#[path = "…"]` only.
            let keep = out
                .trim_end()
                .strip_suffix('=')
                .is_some_and(|o| o.trim_end().ends_with("path"));
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                } else if b[i] == '\n' {
                    out.push('\n');
                } else if keep {
                    out.push(b[i]);
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // 'x', '\n', '\u{..}' are literals; 'a (a lifetime) is not.
            let lit_end = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&k| b[k] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match lit_end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}
