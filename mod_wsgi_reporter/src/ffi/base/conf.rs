//! The configuration as the hooks see it: the three directives' values and
//! the `WSGIDaemonProcess` groups. Written while the Apache parent reads
//! its configuration (single threaded), reset in `pre_config` on every
//! (re)load and inherited by every child at the fork. Both are `Copy`
//! values, so these statics own no heap memory and have no destructor.

use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Mutex;

use reporter_core::config::Config;
use reporter_core::daemon::{GroupConf, GroupTable};

static CONFIG: Mutex<Config> = Mutex::new(Config::DEFAULT);
static GROUPS: Mutex<GroupTable> = Mutex::new(GroupTable::EMPTY);
static HAS_GROUPS: AtomicBool = AtomicBool::new(false);

/// The directive values.
pub(in crate::ffi) fn config() -> Config {
    *CONFIG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the directive values (directive handlers, `pre_config`).
pub(in crate::ffi) fn update_config<R>(f: impl FnOnce(&mut Config) -> R) -> R {
    f(&mut CONFIG.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Stores the daemon groups read from the configuration tree.
pub(in crate::ffi) fn set_daemon_groups(t: GroupTable) {
    HAS_GROUPS.store(!t.is_empty(), Relaxed);
    *GROUPS.lock().unwrap_or_else(|e| e.into_inner()) = t;
}

/// Whether the configuration has daemon process groups (read in
/// `post_config`, inherited by the children).
pub(in crate::ffi) fn has_daemon_groups() -> bool {
    HAS_GROUPS.load(Relaxed)
}

/// The settings of daemon group `name`, if the configuration has it.
pub(in crate::ffi) fn daemon_group(name: &[u8]) -> Option<GroupConf> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).get(name)
}
