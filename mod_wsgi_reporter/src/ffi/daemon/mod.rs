//! Daemon mode (docs/module.md, "Daemon mode").
//!
//! mod_wsgi daemon processes are forked from the Apache parent and run no
//! Apache hook, so:
//! * `post_config` (`start`; ours runs before mod_wsgi's, which forks the
//!   daemons on a restart) reads the `WSGIDaemonProcess` directives from
//!   httpd's configuration tree, looks up mod_wsgi's exported globals with
//!   `dlsym` and registers a `pthread_atfork` child handler (glibc
//!   unregisters it when the module is unloaded);
//! * in every child the Apache parent forks, that handler starts a short
//!   watcher thread (`start`). In an MPM child `child_init` runs and the
//!   watcher leaves; in a daemon mod_wsgi sets `wsgi_daemon_process`, and
//!   the watcher starts the reporter (the same `Process` as embedded mode),
//!   installs the request hooks (`request_hooks`), attaches to the main
//!   interpreter once Python is ready (`auto_attach`), and sends STOPPING
//!   when mod_wsgi begins its shutdown (`state`);
//! * the attach code (python/mod_wsgi_telemetry_attach.py, run by the
//!   watcher or by `WSGIImportScript`) calls the `extern "C"` functions of
//!   `attach_api` and `python_callbacks` through `ctypes`;
//! * STOPPED and the final partial interval are sent from an `atexit`
//!   handler, after mod_wsgi has drained its requests.
//!
//! Layers, lowest first: `state` -> `request_hooks` -> `auto_attach` ->
//! `start` -> `attach_api`, `python_callbacks`.
//!
//! Nothing here runs in the Apache parent but `post_config`, which keeps
//! only `Copy` values.

pub(super) mod attach_api;
pub(super) mod auto_attach;
pub(super) mod python_callbacks;
pub(super) mod request_hooks;
pub(super) mod start;
pub(super) mod state;
