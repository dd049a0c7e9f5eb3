//! GC datagrams per tick: one snapshot per interpreter and its collections
//! as events, at a rate that follows the requests served.

use super::model::{lognormal, poisson, Proc, Simulator, SUB_INTERPRETER};
use rand::Rng;
use wire::emit::{self, GcEvent};

impl Simulator {
    pub(super) fn gc_tick(
        &mut self,
        p: &mut Proc,
        requests: u64,
        now: f64,
        out: &mut Vec<Vec<u8>>,
    ) {
        let mut buf = [0u8; wire::MAX_DATAGRAM];
        // Embedded children host a sub-interpreter next to the main one.
        let interpreters: &[&[u8]] = if p.shape.daemon {
            &[b""]
        } else {
            &[b"", SUB_INTERPRETER]
        };
        for (ii, name) in interpreters.iter().enumerate() {
            let share = if ii == 0 { 1.0 } else { 0.3 };
            let gen0 = poisson(&mut self.rng, requests as f64 * share / 40.0);
            let mut events = Vec::new();
            for _ in 0..gen0 {
                p.gc_collections[0] += 1;
                let gen = if p.gc_collections[0].is_multiple_of(100) {
                    p.gc_collections[2] += 1;
                    2
                } else if p.gc_collections[0].is_multiple_of(10) {
                    p.gc_collections[1] += 1;
                    1
                } else {
                    0
                };
                let collected = self.rng.random_range(0..[400, 2000, 20000][gen]);
                p.gc_collected[gen] += collected;
                let dur = [0.0002, 0.0015, 0.025][gen] * lognormal(&mut self.rng, 1.0, 0.5);
                events.push(GcEvent {
                    start_stamp: now - self.interval * self.rng.random::<f64>(),
                    duration: dur,
                    generation: gen as u64,
                    collected,
                    uncollectable: 0,
                });
            }
            events.sort_by(|a, b| a.start_stamp.total_cmp(&b.start_stamp));
            let dropped = events.len().saturating_sub(64) as u64;
            events.truncate(64);
            let c = p.gc_collections;
            let k = p.gc_collected;
            let values: [u64; 18] = [
                self.rng.random_range(0..700),
                self.rng.random_range(0..10),
                self.rng.random_range(0..10),
                700,
                10,
                10,
                c[0],
                c[1],
                c[2],
                k[0],
                k[1],
                k[2],
                0,
                0,
                0,
                1,
                0,
                std::mem::take(&mut p.gc_dropped_pending),
            ];
            p.gc_dropped_pending = dropped;
            p.seq += 1;
            if let Ok(n) = emit::gc_snapshot(&mut buf, p.pid, p.seq, now, &values, name) {
                out.push(buf[..n].to_vec());
            }
            for ev in &events {
                p.seq += 1;
                if let Ok(n) = emit::gc_event(&mut buf, p.pid, p.seq, now, ev, name) {
                    out.push(buf[..n].to_vec());
                }
            }
        }
    }
}
