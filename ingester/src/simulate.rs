//! `mod_wsgi-telemetry simulate` (not written yet).

/// Options of `simulate`.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {}

/// Runs `simulate`; returns the exit status.
pub fn run(_args: SimulateArgs) -> anyhow::Result<i32> {
    anyhow::bail!("'simulate' is not implemented yet")
}
