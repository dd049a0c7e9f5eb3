//! `mod_wsgi-telemetry dump` (not written yet).

/// Options of `dump`.
#[derive(clap::Args, Debug)]
pub struct DumpArgs {}

/// Runs `dump`; returns the exit status.
pub fn run(_args: DumpArgs) -> anyhow::Result<i32> {
    anyhow::bail!("'dump' is not implemented yet")
}
