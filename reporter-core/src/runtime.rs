//! The reporter thread of one process: start, interruptible tick loop with
//! a per-process phase offset, STOPPING, and a final flush of the partial
//! interval followed by STOPPED. Pure Rust (std threads): the module's FFI
//! layer only decides *when* to call these, in an MPM child and in a
//! mod_wsgi daemon process alike.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::accum::Accounting;
use crate::app_metrics::AppMetrics;
use crate::gc::GcRegistry;
use crate::reporter::Reporter;
use crate::sys::{self, ProcessStats, Sink};

/// OS probes, injectable for tests.
#[derive(Clone, Copy)]
pub struct Probes {
    /// Process CPU/RSS.
    pub process: fn() -> ProcessStats,
    /// A thread's CPU seconds by kernel tid.
    pub thread_cpu: fn(i32) -> Option<f64>,
    /// Wall clock µs.
    pub now_us: fn() -> u64,
    /// One warning line for the operator (Apache's error log in a child).
    pub warn: fn(&str),
}

fn warn_to_stderr(msg: &str) {
    eprintln!("mod_wsgi_telemetry: {msg}");
}

impl Probes {
    /// The real ones.
    pub const SYSTEM: Probes = Probes {
        process: sys::process_stats,
        thread_cpu: sys::thread_cpu_seconds,
        now_us: sys::now_us,
        warn: warn_to_stderr,
    };
}

/// State shared by request threads (accumulators only), the reporter
/// thread and the shutdown path.
pub struct Process<S: Sink> {
    /// Written by request threads, lock-free.
    pub acc: Accounting,
    /// Python GC data pushed by the attach code.
    pub gc: GcRegistry,
    /// The application's own metrics (`+AppMetrics`), drained each tick.
    app: Option<Arc<AppMetrics>>,
    reporter: Mutex<Reporter<S>>,
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    interval: Duration,
    first_delay: Duration,
    probes: Probes,
}

impl<S: Sink + 'static> Process<S> {
    /// Seeds everything now; nothing is sent until [`Process::start`].
    /// `app`: the table of the application's own metrics, sent each tick
    /// (None: `-AppMetrics`).
    pub fn new(
        acc: Accounting,
        reporter: Reporter<S>,
        interval_s: f64,
        first_delay_s: f64,
        probes: Probes,
        app: Option<Arc<AppMetrics>>,
    ) -> Arc<Self> {
        Arc::new(Process {
            acc,
            gc: GcRegistry::default(),
            app,
            reporter: Mutex::new(reporter),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            thread: Mutex::new(None),
            interval: Duration::from_secs_f64(interval_s),
            first_delay: Duration::from_secs_f64(first_delay_s),
            probes,
        })
    }

    fn reporter(&self) -> std::sync::MutexGuard<'_, Reporter<S>> {
        // A panic inside a tick must not disable shutdown reporting.
        self.reporter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends STARTED and starts the reporter thread.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        self.reporter().started();
        let me = self.clone();
        let h = sys::spawn_masked("wsgi-telemetry", move || {
            // A panic here must never take the Apache child down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.run()));
        })?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        Ok(())
    }

    fn run(&self) {
        let mut next = Instant::now() + self.first_delay;
        loop {
            {
                let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if *stop {
                        return;
                    }
                    let now = Instant::now();
                    if now >= next {
                        break;
                    }
                    stop = self
                        .wake
                        .wait_timeout(stop, next - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
            self.tick();
            next += self.interval;
            let now = Instant::now();
            if next <= now {
                // Fell behind (suspended, overloaded): no burst of catch-up ticks.
                next = now + self.interval;
            }
        }
    }

    /// One tick now (reporter thread, or the final flush).
    pub fn tick(&self) {
        let ps = (self.probes.process)();
        let now = (self.probes.now_us)();
        let tc = self.probes.thread_cpu;
        let mut r = self.reporter();
        if let Some(app) = &self.app {
            r.app_tick(app, now);
        }
        r.tick(&self.acc, now, &ps, &tc);
        r.gc_tick(&self.gc, now);
        let lost = r.slow_records_lost_last_tick();
        drop(r);
        if lost > 0 {
            // Once per tick, never per record.
            (self.probes.warn)(&format!(
                "{lost} completed slow-request records lost this interval (more slow requests \
                 finished per thread than its record ring holds); counted in \
                 reporter_dropped_datagrams. Raise WSGISlowRequests to record fewer."
            ));
        }
    }

    /// Runs `f` with the reporter locked and mutable (late identity).
    pub fn with_reporter_mut<R>(&self, f: impl FnOnce(&mut Reporter<S>) -> R) -> R {
        f(&mut self.reporter())
    }

    /// PROCESS_STOPPING with a reason and the in-flight count.
    pub fn stopping(&self, reason: &[u8]) {
        let active = self.acc.active();
        self.reporter().stopping(reason, active);
    }

    /// Stops and joins the thread (interrupting its sleep), flushes the
    /// partial interval, then sends STOPPED. Idempotent.
    pub fn shutdown(&self, reason: &[u8]) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
        let h = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let was_running = h.is_some();
        if let Some(h) = h {
            let _ = h.join();
        }
        if !was_running {
            return;
        }
        self.reporter().linger(crate::sys::FINAL_FLUSH_WAIT_BUDGET);
        self.tick();
        let active = self.acc.active();
        let now = (self.probes.now_us)();
        self.reporter().stopped(reason, active, now);
    }

    /// Runs `f` with the reporter locked (tests, diagnostics).
    pub fn with_reporter<R>(&self, f: impl FnOnce(&Reporter<S>) -> R) -> R {
        f(&self.reporter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accum::Finished;
    use crate::reporter::tests::{settings, VecSink};
    use crate::reporter::OwnedIdentity;

    fn kinds(p: &Process<VecSink>) -> Vec<(u8, Option<u64>)> {
        p.with_reporter(|r| {
            r.sink()
                .out
                .iter()
                .map(|d| {
                    let s = wire::decode(d).unwrap();
                    (s.header.kind.0, s.u64(wire::id::REQUEST_COUNT))
                })
                .collect()
        })
    }

    #[test]
    fn nothing_is_lost_at_the_edges() {
        // Long interval: the thread never ticks by itself during the test,
        // so everything must come from the first/final flush.
        let acc = Accounting::new(2, 0, 60.0);
        let rep = Reporter::new(
            VecSink::default(),
            settings(0),
            OwnedIdentity::default(),
            7,
            2,
            sys::now_us(),
            (0.0, 0.0),
        );
        let p = Process::new(acc, rep, 60.0, 30.0, Probes::SYSTEM, None);
        p.start().unwrap();
        for _ in 0..3 {
            let c = p.acc.claim(0, 0, 1, sys::now_us(), None);
            p.acc.finish(
                c,
                &Finished {
                    status: 200,
                    finish_us: sys::now_us(),
                    ..Default::default()
                },
            );
        }
        p.stopping(b"graceful_signal");
        let t0 = Instant::now();
        p.shutdown(b"graceful_signal");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "stop interrupts the sleep"
        );
        let k = kinds(&p);
        assert_eq!(k, vec![(5, None), (6, None), (2, Some(3)), (7, None)]);
        p.shutdown(b"graceful_signal");
        assert_eq!(kinds(&p).len(), 4, "idempotent");
    }

    #[test]
    fn app_metrics_go_out_just_before_each_request_tick() {
        let acc = Accounting::new(1, 0, 60.0);
        let ident = OwnedIdentity {
            hostname: b"web1".to_vec(),
            process_group: b"g".to_vec(),
            ..OwnedIdentity::default()
        };
        let rep = Reporter::new(
            VecSink::default(),
            settings(0),
            ident,
            7,
            1,
            sys::now_us(),
            (0.0, 0.0),
        );
        let app = Arc::new(AppMetrics::new(4));
        let p = Process::new(acc, rep, 60.0, 30.0, Probes::SYSTEM, Some(app.clone()));
        p.start().unwrap();
        app.incr(b"orders", 2.0);
        p.tick();
        p.tick(); // nothing changed: no kind 10
        app.incr(b"orders", 1.0);
        p.shutdown(b"");
        let (kinds, seqs, apps): (Vec<u8>, Vec<u32>, Vec<_>) = p.with_reporter(|r| {
            let mut k = Vec::new();
            let mut q = Vec::new();
            let mut a = Vec::new();
            for d in &r.sink().out {
                let s = wire::decode_ref(d).unwrap();
                k.push(s.header.kind.0);
                q.push(s.header.seq);
                if s.header.kind == wire::Kind::APP_METRICS {
                    a.push(wire::app::decode(&s).unwrap());
                }
            }
            (k, q, a)
        });
        assert_eq!(kinds, vec![5, 10, 2, 2, 10, 2, 7]);
        assert_eq!(seqs, (1..=7).collect::<Vec<u32>>(), "one sequence");
        let totals: Vec<_> = apps
            .iter()
            .map(|a| {
                (
                    a.hostname.as_str(),
                    a.process_group.as_str(),
                    a.metrics[0].value.clone(),
                )
            })
            .collect();
        use wire::app::MetricValue::Counter;
        assert_eq!(
            totals,
            vec![("web1", "g", Counter(2.0)), ("web1", "g", Counter(3.0))]
        );
    }

    #[test]
    fn thread_ticks_on_its_own() {
        let acc = Accounting::new(1, 0, 0.05);
        let rep = Reporter::new(
            VecSink::default(),
            settings(0),
            OwnedIdentity::default(),
            7,
            1,
            sys::now_us(),
            (0.0, 0.0),
        );
        let p = Process::new(acc, rep, 0.05, 0.01, Probes::SYSTEM, None);
        p.start().unwrap();
        // Wait for at least two ticks without assuming how long they take.
        while kinds(&p).iter().filter(|k| k.0 == 2).count() < 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        p.shutdown(b"");
    }
}
