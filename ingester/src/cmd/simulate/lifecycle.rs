//! Process lifecycle: STARTED when a process appears, and restarts for the
//! reasons mod_wsgi gives, with STOPPING / STOPPED and the slow requests
//! they cut off or drain.

use super::model::{Proc, Simulator, REASONS, SLOW_THRESHOLD};
use rand::Rng;
use wire::emit::{self, Lifecycle};

impl Simulator {
    pub(super) fn started(&self, p: &mut Proc, now: f64, out: &mut Vec<Vec<u8>>) {
        p.started = now;
        p.seq += 1;
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        let id = Self::identity(&self.hostname, p.shape.group, self.parent_pid);
        if let Ok(n) = emit::process_started(&mut buf, p.pid, p.seq, now, &id) {
            out.push(buf[..n].to_vec());
        }
    }

    pub(super) fn restart_due(&mut self, p: &Proc) -> Option<&'static str> {
        if p.max_requests > 0 && p.lifetime_requests >= p.max_requests {
            return Some("maximum_requests");
        }
        if self.rng.random::<f64>() < self.restart_probability {
            if p.shape.daemon {
                return Some(REASONS[self.rng.random_range(0..REASONS.len())]);
            }
            // Embedded children stop without a reason (MaxConnectionsPerChild).
            return Some("");
        }
        None
    }

    pub(super) fn stop(
        &mut self,
        p: &mut Proc,
        reason: &'static str,
        now: f64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        let in_flight = p.long.len() as u64;
        // request_timeout and deadlock_timeout cut requests off; the others
        // drain them first.
        let cut = matches!(reason, "request_timeout" | "deadlock_timeout");
        let host = self.hostname.clone();
        let l = Lifecycle {
            hostname: &host,
            process_group: p.shape.group.as_bytes(),
            shutdown_reason: reason.as_bytes(),
            active_requests_at_decision: in_flight,
            process_uptime: now - p.started,
            lifetime_request_count: p.lifetime_requests,
            active_requests_at_exit: if cut { in_flight } else { 0 },
            graceful_drain: !cut || in_flight == 0,
        };
        p.seq += 1;
        if let Ok(n) = emit::process_stopping(&mut buf, p.pid, p.seq, now, &l) {
            out.push(buf[..n].to_vec());
        }
        if !cut {
            let long = std::mem::take(&mut p.long);
            for r in &long {
                let d = (now - r.start).max(SLOW_THRESHOLD);
                self.slow_record(p, r, true, d, now, out);
            }
        }
        p.seq += 1;
        let stamp = now + 0.05;
        if let Ok(n) = emit::process_stopped(&mut buf, p.pid, p.seq, stamp, &l) {
            out.push(buf[..n].to_vec());
        }
    }
}
