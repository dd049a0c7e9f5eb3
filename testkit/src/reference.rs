//! The reference implementation: mod_wsgi-telemetry 1.1.0 from PyPI in a
//! throwaway virtualenv (`scripts/ref-venv.sh` creates it when missing and
//! prints its path).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Runs the workspace's bash script `script` (a path from the root), which
/// must `purpose` and print a path on stdout, its last line; returns that
/// path. The script's stderr goes to the caller's.
pub fn script_path(script: &str, purpose: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(crate::workspace_root().join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(out.status.success(), "{script} failed: it must {purpose}");
    let text = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(text.trim().lines().last().unwrap_or_default())
}

/// The reference virtualenv, created by `scripts/ref-venv.sh` if missing
/// (once per process).
pub fn ref_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| script_path("scripts/ref-venv.sh", "install the reference ingester"))
        .clone()
}

/// The reference's `mod_wsgi-telemetry` executable.
pub fn reference_exe() -> PathBuf {
    let exe = ref_venv().join("bin/mod_wsgi-telemetry");
    assert!(exe.exists(), "{} missing", exe.display());
    exe
}
