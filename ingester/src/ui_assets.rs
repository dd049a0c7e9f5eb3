//! The browser UI's files, embedded at compile time (placeholder until the
//! UI lands: owned by the UI work, which replaces this file).

/// The page served at `GET /` (before the base-path injection).
pub const INDEX_HTML: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mod_wsgi-telemetry</title></head>\n<body><h1>mod_wsgi-telemetry</h1><p>The browser UI is not built yet. The JSON API is at <a href=\"api/state\">api/state</a>; live updates at <code>/ws</code>.</p></body></html>\n";

/// A static file by its path relative to `static/`: bytes and content type.
pub fn asset(_path: &str) -> Option<(&'static [u8], &'static str)> {
    None
}
