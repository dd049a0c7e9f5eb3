//! `mod_wsgi-telemetry`: see the crate documentation of `mwt_ingester`.

fn main() {
    std::process::exit(mwt_ingester::cmd::main());
}
