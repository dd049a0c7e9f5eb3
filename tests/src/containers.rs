//! Containerised httpd: one image per Debian release with that release's
//! own apache2, mod_wsgi and Python (scripts/containers/build-images.sh,
//! built from debootstrap without a registry), the module compiled for
//! each in the release's builder image (scripts/containers/build-module.sh),
//! and a [`Container`] guard that removes the container it started, by id,
//! even when the test panics. It never removes images or containers it did
//! not create.
//!
//! On by default wherever a Docker engine answers (`MWT_CONTAINERS=0`
//! opts out); skipped tests say so on the terminal, one line each, with
//! the reason, so a machine without an engine never looks like a pass.
//! The first run builds the images and packages (minutes; scripts/test.sh
//! starts the image builds at its very beginning); later runs reuse them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use testkit::{last_lines, workspace_root};

/// A Debian release the container tests run, and the mod_wsgi series its
/// `libapache2-mod-wsgi-py3` ships.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Debian code name (containers/<release>/Dockerfile).
    pub release: &'static str,
    /// `major.minor.` prefix of its mod_wsgi version.
    pub mod_wsgi_series: &'static str,
}

/// Debian 11, 12 and 13.
pub const TARGETS: [Target; 3] = [
    Target {
        release: "bullseye",
        mod_wsgi_series: "4.7.",
    },
    Target {
        release: "bookworm",
        mod_wsgi_series: "4.9.",
    },
    Target {
        release: "trixie",
        mod_wsgi_series: "5.0.",
    },
];

/// The target named `release`.
pub fn target(release: &str) -> Target {
    *TARGETS
        .iter()
        .find(|t| t.release == release)
        .unwrap_or_else(|| panic!("no container target {release}"))
}

/// Why the container tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if std::env::var("MWT_CONTAINERS").as_deref() == Ok("0") {
        return Some("MWT_CONTAINERS=0 (opted out)".into());
    }
    docker_engine().err()
}

/// The Docker engine's version if one answers (`docker info`), else why
/// not.
pub fn docker_engine() -> Result<String, String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Err(format!("docker is not installed ({e})")),
        Ok(o) if !o.status.success() => Err(format!(
            "no Docker engine reachable: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
    }
}

/// True if the test should go on; otherwise says so on the terminal.
/// Written to the process's stderr directly: the test harness captures
/// `eprintln!` of passing tests, and a skip must not look like a pass.
pub fn should_run(test: &str) -> bool {
    match skip_reason() {
        None => true,
        Some(why) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
            false
        }
    }
}

/// The images of one release.
#[derive(Clone, Debug)]
pub struct Images {
    /// apache2 + libapache2-mod-wsgi-py3 + python3.
    pub httpd: String,
    /// The above + apache2-dev and libclang-dev: builds the module.
    pub builder: String,
    /// The bare release (the ingester's package is installed into it).
    pub base: String,
    /// (mod_wsgi version, image): the builder plus that mod_wsgi from PyPI
    /// as Apache's `wsgi` module, for the versions the matrix runs on this
    /// release (containers/pypi.Dockerfile).
    pub pypi: Vec<(String, String)>,
}

impl Images {
    /// The image whose `wsgi` module is mod_wsgi `version` from PyPI.
    pub fn pypi(&self, version: &str) -> &str {
        self.pypi
            .iter()
            .find(|(v, _)| v == version)
            .map(|(_, image)| image.as_str())
            .unwrap_or_else(|| panic!("build-images.sh built no mod_wsgi {version} image"))
    }
}

fn script(name: &str) -> PathBuf {
    workspace_root().join("scripts/containers").join(name)
}

/// Output of a command that must succeed (its stderr goes to the test's).
fn stdout_of(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(out.status.success(), "{what} failed ({})", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds (or reuses, while its inputs are unchanged) `release`'s images.
pub fn images(release: &str) -> Images {
    let out = stdout_of(
        Command::new(script("build-images.sh")).arg(release),
        "scripts/containers/build-images.sh",
    );
    parse_images(release, &out)
}

/// `release`'s httpd image alone (`build-images.sh --httpd-only`: no
/// builder or PyPI images), for the integration tests' httpd backend.
pub fn httpd_image(release: &str) -> String {
    let out = stdout_of(
        Command::new(script("build-images.sh"))
            .arg("--httpd-only")
            .arg(release),
        "scripts/containers/build-images.sh --httpd-only",
    );
    parse_images(release, &out).httpd
}

/// build-images.sh's lines for `release`: `<release> <httpd> <builder>
/// <base>`, then `<release>/mod_wsgi-<version> <image>` per PyPI build.
fn parse_images(release: &str, out: &str) -> Images {
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let tags = rows
        .iter()
        .find(|r| r.len() == 4 && r[0] == release)
        .unwrap_or_else(|| panic!("build-images.sh printed no line for {release}: {out}"));
    let pypi_prefix = format!("{release}/mod_wsgi-");
    Images {
        httpd: tags[1].into(),
        builder: tags[2].into(),
        base: tags[3].into(),
        pypi: rows
            .iter()
            .filter(|r| r.len() == 2)
            .filter_map(|r| {
                Some((
                    r[0].strip_prefix(&pypi_prefix)?.to_string(),
                    r[1].to_string(),
                ))
            })
            .collect(),
    }
}

/// The module built in `release`'s builder image (incremental per release
/// under target/containers/<release>).
pub fn module_for(release: &str, images: &Images) -> PathBuf {
    let out = stdout_of(
        Command::new(script("build-module.sh"))
            .arg(release)
            .arg(&images.builder),
        "scripts/containers/build-module.sh",
    );
    PathBuf::from(
        out.lines()
            .last()
            .expect("build-module.sh printed the .so path"),
    )
}

/// A container this test started (`docker run -d`), removed by its id when
/// dropped; its log is printed first if the test is failing.
pub struct Container {
    /// Full container id.
    pub id: String,
}

impl Container {
    /// `docker run -d <args...> <image> [cmd...]`, labelled as ours.
    pub fn run(args: &[&str], image: &str, cmd: &[&str]) -> Container {
        let out = stdout_of(
            Command::new("docker")
                .args(["run", "-d", "--label", "org.mod-wsgi-telemetry.role=test"])
                .args(args)
                .arg(image)
                .args(cmd),
            "docker run",
        );
        Container {
            id: out.trim().to_string(),
        }
    }

    /// `docker exec <id> <cmd...>`: its stdout.
    pub fn exec(&self, cmd: &[&str]) -> String {
        stdout_of(
            Command::new("docker").arg("exec").arg(&self.id).args(cmd),
            "docker exec",
        )
    }

    /// `docker stop -t <secs> <id>`: SIGTERM to the container's pid 1, then
    /// SIGKILL after `secs`.
    pub fn stop(&self, secs: u32) {
        stdout_of(
            Command::new("docker").args(["stop", "-t", &secs.to_string(), &self.id]),
            "docker stop",
        );
    }

    /// Whether it is still running (`docker inspect`).
    pub fn running(&self) -> bool {
        Command::new("docker")
            .args(["inspect", "-f", "{{.State.Running}}", &self.id])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"true"))
    }

    /// Its stdout and stderr so far.
    pub fn logs(&self) -> String {
        Command::new("docker")
            .args(["logs", &self.id])
            .stdin(Stdio::null())
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- log of container {} (last 60 lines):\n{}",
                &self.id[..12.min(self.id.len())],
                last_lines(&self.logs(), 60)
            );
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}
