//! The repository's fixtures: the corpus capture of a real mod_wsgi 6.1.1
//! (`tests/fixtures/corpus/`, or the directory `$TELEMETRY_CORPUS_DIR`
//! names) and the reference decoder's JSON of every datagram in it.

use std::path::{Path, PathBuf};

/// The capture's file name in the corpus directory.
const CAPTURE: &str = "anchor-6.1.1-mixed.bin";
/// The reference decoder's output for [`CAPTURE`], one object a datagram.
const DECODING: &str = "anchor-6.1.1-mixed.json";

/// The workspace root (this crate's parent directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ has a parent")
        .to_path_buf()
}

/// `tests/fixtures/corpus/` of the repository, or `$TELEMETRY_CORPUS_DIR`.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TELEMETRY_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests/fixtures/corpus"))
}

/// The real mod_wsgi 6.1.1 capture.
pub fn corpus_path() -> PathBuf {
    corpus_dir().join(CAPTURE)
}

fn read_corpus_file(name: &str) -> Vec<u8> {
    let dir = corpus_dir();
    std::fs::read(dir.join(name)).unwrap_or_else(|e| {
        panic!(
            "{name} not found in {} ({e}); set TELEMETRY_CORPUS_DIR",
            dir.display()
        )
    })
}

/// The capture file's bytes (records of `wire::capture`).
pub fn corpus_capture() -> Vec<u8> {
    read_corpus_file(CAPTURE)
}

/// The capture's datagrams, in capture order.
pub fn corpus_records() -> Vec<Vec<u8>> {
    wire::capture::records(&corpus_capture())
        .map(|r| {
            r.unwrap_or_else(|off| panic!("corpus capture: bad record at offset {off}"))
                .to_vec()
        })
        .collect()
}

/// The reference decoder's JSON of every datagram of the capture, in
/// capture order (`size`, header fields, `fields` by name in wire order).
pub fn reference_decoding() -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&read_corpus_file(DECODING)).expect("the decoding is JSON");
    match v {
        serde_json::Value::Array(a) => a,
        _ => panic!("{DECODING}: not a JSON array"),
    }
}
