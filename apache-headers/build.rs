//! Generates bindings from the headers the toolchain reports: `apxs -q
//! INCLUDEDIR`, `apr-1-config --includes --cppflags`, `apu-1-config
//! --includes`. Nothing is hard-coded; set `APXS` to pick another apxs.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn query(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("apache-headers: cannot run `{cmd}` ({e}); install apache2-dev")
    });
    if !out.status.success() {
        panic!("apache-headers: `{cmd} {}` failed", args.join(" "));
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-env-changed=APXS");
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let include_dir = query(&apxs, &["-q", "INCLUDEDIR"]);
    let mut clang_args = vec![format!("-I{include_dir}")];
    for (cmd, args) in [
        ("apr-1-config", &["--includes", "--cppflags"][..]),
        ("apu-1-config", &["--includes"][..]),
    ] {
        clang_args.extend(query(cmd, args).split_whitespace().map(str::to_string));
    }
    println!("cargo:include={include_dir}");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("ap_.*|apr_.*")
        .allowlist_type("ap_LINK_handler_t|request_rec|conn_rec|server_rec|module|module_struct|command_rec|cmd_parms|ap_filter_t|ap_filter_rec_t|apr_bucket.*|apr_table_entry_t|worker_score|process_score|global_score|scoreboard")
        .allowlist_var("ap_.*|apr_bucket_type_.*|MODULE_MAGIC_.*|AP_.*|APR_.*|APLOG_.*|OK|DECLINED|DONE|RSRC_CONF|OR_.*|NOT_IN_.*|HTTP_.*|ACCESS_CONF")
        .layout_tests(true)
        .derive_debug(false)
        .derive_default(false)
        .generate_comments(false)
        .generate()
        .expect("apache-headers: bindgen failed on the httpd/APR headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    bindings.write_to_file(out).expect("write bindings.rs");
}
