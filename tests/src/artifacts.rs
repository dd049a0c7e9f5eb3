//! What the tests run that this workspace builds or a script installs:
//! the module `.so`, our ingester, mod_wsgi 6.1.1 from PyPI. Each is built
//! once per test binary, with cargo into a separate target dir (so the
//! nested cargo never waits on the outer one's lock), unless an
//! environment variable names a build to use.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use testkit::workspace_root;

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds one artifact of this workspace with cargo into the separate
/// target dir the tests use (so the nested cargo never waits on the outer
/// one's lock) and returns its path: `$env_var` if set, else
/// `<target>/module-for-tests/debug/<artifact>`.
fn built_artifact(env_var: &str, cargo_args: &[&str], artifact: &str, what: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let dir = target_dir().join("module-for-tests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .args(["build", "--quiet"])
        .args(cargo_args)
        .arg("--target-dir")
        .arg(&dir)
        .current_dir(workspace_root())
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {what}: {e}"));
    assert!(st.success(), "building {what} failed");
    dir.join("debug").join(artifact)
}

/// Path of the module `.so` under test (built on first use).
pub fn module_so() -> PathBuf {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        built_artifact(
            "MOD_WSGI_TELEMETRY_SO",
            &["-p", "mod_wsgi_reporter"],
            "libmod_wsgi_telemetry.so",
            "the module",
        )
    })
    .clone()
}

/// Our ingester binary: `$MOD_WSGI_TELEMETRY_BIN` if set, else built once
/// with cargo into the same separate target dir as the module.
pub fn ingester_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        built_artifact(
            "MOD_WSGI_TELEMETRY_BIN",
            &["-p", "mod_wsgi-telemetry", "--bin", "mod_wsgi-telemetry"],
            "mod_wsgi-telemetry",
            "the ingester",
        )
    })
    .clone()
}

/// mod_wsgi 6.1.1 built from PyPI against this apxs, in a throwaway venv
/// (scripts/mod-wsgi-6-venv.sh builds it when missing): (module .so, venv).
pub fn mod_wsgi6() -> (PathBuf, PathBuf) {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    let so = SO
        .get_or_init(|| testkit::script_path("scripts/mod-wsgi-6-venv.sh", "build mod_wsgi 6.1.1"))
        .clone();
    // <venv>/lib/pythonX.Y/site-packages/mod_wsgi/server/<so>
    let venv = so.ancestors().nth(6).unwrap().to_path_buf();
    (so, venv)
}
