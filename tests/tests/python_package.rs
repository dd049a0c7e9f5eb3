//! The `mod_wsgi_telemetry` Python package (`python/`): its unit tests
//! (`python3 -m unittest discover -s python/tests`, which build a stand-in
//! for the module's C ABI with gcc), and a pip install of the package from
//! the repository's `python/` into a fresh virtualenv, with no index and no
//! compiler, after which it imports and reports itself disabled. Both with
//! the system's Python (the one the OS-packaged mod_wsgi embeds), whose
//! setuptools and wheel the virtualenv borrows (`--system-site-packages`).

use integration_tests::workspace_root as workspace;
use std::path::Path;
use std::process::Command;

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn python_unit_tests_pass() {
    let out = run(Command::new(python())
        .args(["-m", "unittest", "discover", "-s", "python/tests", "-v"])
        .current_dir(workspace()));
    // Both the no-module and the stand-in-module cases ran.
    assert!(out.contains("WithoutTheModule"), "{out}");
    assert!(out.contains("WithTheModule"), "{out}");
    assert!(out.contains("\nOK"), "{out}");
}

#[test]
fn pip_installs_from_the_repository_path() {
    let venv = tempfile::tempdir().unwrap();
    // setuptools writes build/ and *.egg-info beside the sources: install
    // from a copy so that the checkout stays as it is.
    let src = tempfile::tempdir().unwrap();
    let package = workspace().join("python");
    for f in [
        "pyproject.toml",
        "README.md",
        "mod_wsgi_telemetry/__init__.py",
    ] {
        let to = src.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(package.join(f), &to).unwrap();
    }
    run(Command::new(python())
        .args(["-m", "venv", "--system-site-packages"])
        .arg(venv.path()));
    let py = venv.path().join("bin/python");
    // No index, no build isolation: only what the package itself needs.
    run(Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-build-isolation",
        ])
        .arg(src.path()));
    let out = run(Command::new(&py)
        .args([
            "-c",
            "import mod_wsgi_telemetry as m; m.incr('x'); print(m.enabled(), m.__file__)",
        ])
        .current_dir(venv.path()));
    assert!(out.starts_with("False "), "{out}");
    assert!(out.contains("site-packages"), "{out}");
}
