//! The command line, and the two settings the whole run reads (`--rt`,
//! the saturation step's length).

use crate::send::Pacing;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) pacings: Vec<Pacing>,
    pub(crate) skip_reference: bool,
    pub(crate) ours: PathBuf,
    pub(crate) reference: Option<PathBuf>,
    /// Run only one part: ladders (with saturation), saturation (no ladder
    /// steps), fills or instructions (in this process, no server).
    pub(crate) only: Option<Part>,
    /// `--only instructions`: processes the corpus stands for, and passes
    /// over it.
    pub(crate) procs: usize,
    pub(crate) passes: u64,
    /// Also run ours with `--state-dir` (ladders and saturation only).
    pub(crate) state_dir: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Part {
    Ladders,
    Saturation,
    Fills,
    Instructions,
}

pub(crate) fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        quick: false,
        pacings: vec![Pacing::Burst, Pacing::Even],
        skip_reference: false,
        ours: testkit::workspace_root().join("target/release/mod_wsgi-telemetry"),
        reference: None,
        only: None,
        procs: 200,
        passes: 5,
        state_dir: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                SAT_SECS.store(0, Ordering::Relaxed);
            }
            "--skip-reference" => o.skip_reference = true,
            "--state-dir" => o.state_dir = true,
            "--rt" => RT.store(true, Ordering::Relaxed),
            "--sat-secs" => SAT_SECS.store(
                it.next()
                    .and_then(|v| v.parse().ok())
                    .context("--sat-secs SECONDS")?,
                Ordering::Relaxed,
            ),
            "--pacing" => {
                o.pacings = match it.next().as_deref() {
                    Some("burst") => vec![Pacing::Burst],
                    Some("even") => vec![Pacing::Even],
                    Some("both") => vec![Pacing::Burst, Pacing::Even],
                    _ => bail!("--pacing burst|even|both"),
                }
            }
            "--only" => {
                o.only = Some(match it.next().as_deref() {
                    Some("ladders") => Part::Ladders,
                    Some("saturation") => Part::Saturation,
                    Some("fills") => Part::Fills,
                    Some("instructions") => Part::Instructions,
                    _ => bail!("--only ladders|saturation|fills|instructions"),
                })
            }
            "--procs" => {
                o.procs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .context("--procs N (N > 0)")?
            }
            "--passes" => {
                o.passes = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--passes K")?
            }
            "--ours" => o.ours = it.next().context("--ours PATH")?.into(),
            "--reference" => o.reference = Some(it.next().context("--reference PATH")?.into()),
            "-h" | "--help" => {
                println!(
                    "bench_ingest [--quick] [--skip-reference] [--state-dir] [--pacing burst|even|both] [--rt] [--ours PATH] [--reference PATH]\n\
                     [--only ladders|saturation|fills] (saturation: no ladder steps, only the\n\
                     saturation step of the last pacing) [--sat-secs N] (length of the saturation\n\
                     step; default 10 s, with --quick the ladder step's; give --sat-secs after --quick)\n\
                     [--only instructions [--procs N] [--passes K]] (no server: the receive path in\n\
                     this process, for callgrind; default 200 processes, 5 passes; see instructions.rs)\n\
                     ours defaults to target/release/mod_wsgi-telemetry (cargo build --release);\n\
                     the reference to $REF_VENV/bin/mod_wsgi-telemetry (default /tmp/refvenv,\n\
                     created with `bash scripts/ref-venv.sh` when missing)."
                );
                std::process::exit(0);
            }
            other => bail!("unknown option {other} (try --help)"),
        }
    }
    if o.only == Some(Part::Instructions) {
        return Ok(o);
    }
    if !o.ours.is_file() {
        bail!(
            "{} not found: run `cargo build --release` first or pass --ours PATH",
            o.ours.display()
        );
    }
    if !o.skip_reference && o.reference.is_none() {
        // $REF_VENV or /tmp/refvenv, created by scripts/ref-venv.sh when missing.
        o.reference = Some(testkit::reference_exe());
    }
    if let Some(r) = &o.reference {
        if !r.is_file() {
            bail!(
                "reference {} not found (or pass --skip-reference)",
                r.display()
            );
        }
    }
    Ok(o)
}

/// `--rt`: servers, the bare receiver and the sender run SCHED_FIFO 1.
pub(crate) static RT: AtomicBool = AtomicBool::new(false);
/// Length of the saturation step in seconds (0: the ladder's step length,
/// what `--quick` uses). Ten by default: a sustained rate is a steady
/// state, and the reference drains its first second faster than the rest
/// (its per-second figures show it), so a short step flatters it.
pub(crate) static SAT_SECS: AtomicU64 = AtomicU64::new(10);

/// How long the saturation step lasts, given the ladder's step length.
pub(crate) fn saturation_step(ladder_step: Duration) -> Duration {
    match SAT_SECS.load(Ordering::Relaxed) {
        0 => ladder_step,
        s => Duration::from_secs(s),
    }
}
