//! `mod_wsgi-telemetry replay` (not written yet).

/// Options of `replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {}

/// Runs `replay`; returns the exit status.
pub fn run(_args: ReplayArgs) -> anyhow::Result<i32> {
    anyhow::bail!("'replay' is not implemented yet")
}
