//! The test's own receiver of the module's datagrams ([`Collector`], a
//! UNIX datagram socket read on a thread and decoded with the `wire`
//! crate) and sums and selections over what it received.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::PATIENCE;
use wire::{id, Kind, Sample};

/// A received datagram.
#[derive(Clone, Debug)]
pub struct Received {
    /// Decoded.
    pub sample: Sample,
}

/// Receives datagrams on its own socket in a background thread.
pub struct Collector {
    /// Socket path.
    pub path: PathBuf,
    samples: Arc<Mutex<Vec<Sample>>>,
    apps: Arc<Mutex<Vec<(u32, wire::app::AppMetrics)>>>,
    decode_errors: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    /// Binds `path` (mode 0666 so www-data children can send).
    pub fn bind(path: &Path) -> Collector {
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path).expect("bind collector socket");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let apps = Arc::new(Mutex::new(Vec::new()));
        let decode_errors = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let paused = Arc::new(AtomicBool::new(false));
        let (s2, a2, e2, st2, p2) = (
            samples.clone(),
            apps.clone(),
            decode_errors.clone(),
            stop.clone(),
            paused.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !st2.load(Ordering::SeqCst) {
                if p2.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                if let Ok(n) = sock.recv(&mut buf) {
                    match wire::decode(&buf[..n]) {
                        Ok(s) => {
                            if s.header.kind == Kind::APP_METRICS {
                                // Also read as application metrics.
                                let app = wire::decode_ref(&buf[..n])
                                    .ok()
                                    .and_then(|r| wire::app::decode(&r).ok());
                                match app {
                                    Some(a) => a2.lock().unwrap().push((s.header.pid, a)),
                                    None => *e2.lock().unwrap() += 1,
                                }
                            }
                            s2.lock().unwrap().push(s)
                        }
                        Err(_) => *e2.lock().unwrap() += 1,
                    }
                }
            }
        });
        Collector {
            path: path.to_path_buf(),
            samples,
            apps,
            decode_errors,
            stop,
            paused,
            thread: Some(thread),
        }
    }

    /// Stops reading (like a SIGSTOPped ingester) or resumes.
    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// The `app_metrics` datagrams (kind 10) received so far, read with
    /// `wire::app::decode`, with the sender's pid, in arrival order.
    pub fn app_metrics(&self) -> Vec<(u32, wire::app::AppMetrics)> {
        self.apps.lock().unwrap().clone()
    }

    /// Undecodable datagrams (kind 10 ones included: `wire::app::decode`
    /// must read them too).
    pub fn decode_errors(&self) -> u64 {
        *self.decode_errors.lock().unwrap()
    }

    /// Waits until `cond` holds on the samples (panics after [`PATIENCE`]
    /// with `what`).
    pub fn wait_for(&self, what: &str, cond: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
        let t0 = Instant::now();
        loop {
            let s = self.samples();
            if cond(&s) {
                return s;
            }
            assert!(
                t0.elapsed() < PATIENCE,
                "timed out waiting for: {what}; received {} datagrams:\n{}",
                s.len(),
                per_pid_summary(&s)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One line per pid: the kind and sequence number of the last datagrams it
/// sent (a gap in the numbers is a lost datagram; no STOPPED after the last
/// one is a child that died or is still running) and the highest
/// `reporter_dropped_datagrams` its REQUEST datagrams carried.
pub fn per_pid_summary(s: &[Sample]) -> String {
    let mut by_pid: std::collections::BTreeMap<u32, (Vec<String>, Option<u64>)> =
        Default::default();
    for x in s {
        let e = by_pid.entry(x.header.pid).or_default();
        e.0.push(format!("{}#{}", x.header.kind.0, x.header.seq));
        if x.header.kind == Kind::REQUEST {
            e.1 = e.1.max(x.u64(id::REPORTER_DROPPED_DATAGRAMS));
        }
    }
    by_pid
        .iter()
        .map(|(p, (v, dropped))| {
            let tail = &v[v.len().saturating_sub(8)..];
            format!(
                "  pid {p}: {} sent, last {}, dropped {dropped:?}",
                v.len(),
                tail.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Samples of one kind.
pub fn of_kind(s: &[Sample], k: Kind) -> Vec<&Sample> {
    s.iter().filter(|x| x.header.kind == k).collect()
}

/// Sum of a U64 field over REQUEST samples.
pub fn sum_u64(s: &[Sample], field: u16) -> u64 {
    of_kind(s, Kind::REQUEST)
        .iter()
        .map(|x| x.u64(field).unwrap_or(0))
        .sum()
}

/// Pids that sent STOPPED.
pub fn stopped_pids(s: &[Sample]) -> Vec<u32> {
    of_kind(s, Kind::PROCESS_STOPPED)
        .iter()
        .map(|x| x.header.pid)
        .collect()
}

/// Pids that sent STARTED.
pub fn started_pids(s: &[Sample]) -> Vec<u32> {
    of_kind(s, Kind::PROCESS_STARTED)
        .iter()
        .map(|x| x.header.pid)
        .collect()
}

/// Every process that started has stopped.
pub fn all_stopped(s: &[Sample]) -> bool {
    let st = started_pids(s);
    let sp = stopped_pids(s);
    !st.is_empty() && st.iter().all(|p| sp.contains(p))
}

/// Element-wise sum of an I32 array field over REQUEST samples.
pub fn sum_buckets(s: &[Sample], field: u16) -> Vec<i64> {
    let mut out = vec![0i64; wire::histogram::BUCKETS];
    for x in of_kind(s, Kind::REQUEST) {
        if let Some(wire::Value::I32Array(a)) = x.get(field) {
            for (o, v) in out.iter_mut().zip(a) {
                *o += *v as i64;
            }
        }
    }
    out
}

/// Slow records (kind 4) for a given path.
pub fn slow_for<'a>(s: &'a [Sample], path_info: &str) -> Vec<&'a Sample> {
    of_kind(s, Kind::SLOW_REQUEST)
        .into_iter()
        .filter(|x| x.text(id::SLOW_PATH_INFO).as_deref() == Some(path_info))
        .collect()
}
