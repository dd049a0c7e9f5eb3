//! `mod_wsgi-telemetry top` (not written yet).

/// Options of `top`.
#[derive(clap::Args, Debug)]
pub struct TopArgs {}

/// Runs `top`; returns the exit status.
pub fn run(_args: TopArgs) -> anyhow::Result<i32> {
    anyhow::bail!("'top' is not implemented yet")
}
