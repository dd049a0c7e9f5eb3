//! Processes by pid: signals, whether one is gone, a whole tree. Tests stop
//! only what they started, by its own pid (never by name).

// kill(2) is the one call here without a safe std equivalent.
#![allow(unsafe_code)]

use std::process::{Child, Command, Stdio};

/// Sends `sig` to `pid` (a pid the caller started); whether it was sent.
pub fn signal(pid: u32, sig: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Runs `cmd` to its end; panics with `what` and everything it wrote if it
/// fails; returns its stdout (lossy UTF-8).
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a process is gone (or a zombie waiting to be reaped).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Pids of every descendant of `root`, parents before their children (from
/// the parent pid in each `/proc/PID/stat`).
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // The parent pid is the second field after the ")" closing the name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent_of {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// A child whose whole process tree is killed (SIGKILL, by pid, deepest
/// first) and reaped when dropped: a browser outlives a killed driver, a
/// killed wrapper leaves its workers behind.
pub struct KillTree(pub Child, pub &'static str);

impl Drop for KillTree {
    fn drop(&mut self) {
        let mut tree = descendants(self.0.id());
        tree.reverse();
        for pid in tree {
            signal(pid, libc::SIGKILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_tree_is_found_and_killed() {
        let child = Command::new("sh")
            .args(["-c", "sleep 600 & sleep 600 & wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        crate::wait_until("two sleeps under sh", || descendants(pid).len() == 2);
        let kids = descendants(pid);
        drop(KillTree(child, "sh"));
        crate::wait_until("the sleeps to go", || kids.iter().all(|&k| process_gone(k)));
        assert!(process_gone(pid));
    }
}
