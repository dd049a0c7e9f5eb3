//! The browser UI's files (`ingester/static/`), embedded at compile time so
//! the binary needs no runtime files.
//!
//! Every file is listed once in [`ASSETS`]; a unit test fails when a file in
//! `static/` is missing from the list (or listed but gone), so adding a JS
//! module cannot silently produce a 404. `static/tests/` (node unit tests of
//! the pure JS modules) and `static/README.md` are deliberately not embedded.

/// The page served at `GET /` (before the base-path injection).
pub(crate) const INDEX_HTML: &str = include_str!("../../static/index.html");

macro_rules! assets {
    ($($path:literal => $ctype:literal),* $(,)?) => {
        /// Embedded files: (path relative to `static/`, bytes, content type).
        pub(crate) static ASSETS: &[(&str, &[u8], &str)] = &[
            $(($path, include_bytes!(concat!("../../static/", $path)), $ctype)),*
        ];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "app.js" => "text/javascript; charset=utf-8",
    "js/charts.js" => "text/javascript; charset=utf-8",
    "js/conn.js" => "text/javascript; charset=utf-8",
    "js/dom.js" => "text/javascript; charset=utf-8",
    "js/format.js" => "text/javascript; charset=utf-8",
    "js/helptext.js" => "text/javascript; charset=utf-8",
    "js/hist.js" => "text/javascript; charset=utf-8",
    "js/perf.js" => "text/javascript; charset=utf-8",
    "js/snapshot.js" => "text/javascript; charset=utf-8",
    "js/stats.js" => "text/javascript; charset=utf-8",
    "js/store.js" => "text/javascript; charset=utf-8",
    "js/views/capacity.js" => "text/javascript; charset=utf-8",
    "js/views/custom.js" => "text/javascript; charset=utf-8",
    "js/views/gc.js" => "text/javascript; charset=utf-8",
    "js/views/help.js" => "text/javascript; charset=utf-8",
    "js/views/history.js" => "text/javascript; charset=utf-8",
    "js/views/modal.js" => "text/javascript; charset=utf-8",
    "js/views/overview.js" => "text/javascript; charset=utf-8",
    "js/views/processes.js" => "text/javascript; charset=utf-8",
    "js/views/sidebar.js" => "text/javascript; charset=utf-8",
    "js/views/slow.js" => "text/javascript; charset=utf-8",
    "js/views/slowdetail.js" => "text/javascript; charset=utf-8",
}

/// A static file by its path relative to `static/` (e.g. `app.js`,
/// `js/charts.js`): bytes and content type. Paths with `..`, a leading `/`
/// or anything not listed give `None`.
pub(crate) fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, bytes, ctype)| (*bytes, *ctype))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).expect("static dir") {
            let p = e.expect("entry").path();
            let rel = p
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .replace('\\', "/");
            if p.is_dir() {
                if rel != "tests" {
                    walk(&p, root, out);
                }
            } else if rel != "README.md" {
                out.push(rel);
            }
        }
    }

    #[test]
    fn every_static_file_is_embedded_and_nothing_else() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|(p, _, _)| p.to_string()).collect();
        listed.sort();
        assert_eq!(
            listed, on_disk,
            "ASSETS must list exactly the files of static/"
        );
    }

    #[test]
    fn lookup_and_content_types() {
        let (b, t) = asset("app.js").expect("app.js");
        assert!(t.starts_with("text/javascript"));
        assert!(std::str::from_utf8(b).unwrap().contains("__telemetryPerf"));
        assert_eq!(asset("style.css").unwrap().1, "text/css; charset=utf-8");
        assert!(asset("js/views/capacity.js").is_some());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("/app.js").is_none());
        assert!(asset("tests/store.test.mjs").is_none());
        assert!(asset("nope.js").is_none());
        assert_eq!(
            asset("js/store.js").unwrap().1,
            "text/javascript; charset=utf-8"
        );
    }

    #[test]
    fn index_loads_assets_under_the_injected_base() {
        assert!(INDEX_HTML.contains("</head>"));
        assert!(INDEX_HTML.contains("TELEMETRY_BASE"));
        assert!(INDEX_HTML.contains("/static/app.js"));
        // no external assets (no CDN)
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
    }
}
