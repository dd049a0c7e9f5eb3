//! `mod_wsgi-telemetry`: see the crate documentation of `mod_wsgi_telemetry`.

fn main() {
    std::process::exit(mod_wsgi_telemetry::cli::main());
}
