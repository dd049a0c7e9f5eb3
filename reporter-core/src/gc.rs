//! Python GC telemetry (wire fields 300-324; limits as mod_wsgi 6.x's,
//! `docs/compatibility.md` K9), fed by the
//! attach code running inside each interpreter (`python/`): a `gc.callbacks`
//! hook reports every collection, a small Python thread reports the
//! counters once per interval. The reporter thread only copies from here;
//! it never touches Python.

use std::collections::VecDeque;
use std::sync::Mutex;

use wire::emit::GcEvent;

/// Interpreters one process reports at most (the reference's limit).
pub const MAX_INTERPRETERS: usize = 32;
/// Events kept per interpreter between two ticks; older ones are dropped
/// and counted (field 317).
pub const EVENT_RING: usize = 256;
/// Events sent per interpreter per tick; the rest wait for the next tick.
pub const EVENTS_PER_TICK: usize = 64;
/// Interpreter names are cut to this many bytes.
pub const NAME_MAX: usize = 127;

/// Counters 300..=316 as the attach code read them.
pub type Counters = [u64; 17];

struct Interp {
    name: Vec<u8>,
    counters: Option<Counters>,
    events: VecDeque<GcEvent>,
    dropped: u64,
}

/// What one tick sends for one interpreter.
pub struct Drained {
    /// Fields 300..=317 (317 = events dropped since the previous tick).
    pub values: [u64; 18],
    /// Events to send after the snapshot.
    pub events: Vec<GcEvent>,
    /// Application-group key ("" = main interpreter).
    pub name: Vec<u8>,
}

/// Per-process registry of attached interpreters.
#[derive(Default)]
pub struct GcRegistry {
    inner: Mutex<Vec<Interp>>,
}

impl GcRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Interp>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an interpreter by name. Returns `(index, new)`, or `None`
    /// when the table is full.
    pub fn register(&self, name: &[u8]) -> Option<(usize, bool)> {
        let name = &name[..name.len().min(NAME_MAX)];
        let mut v = self.lock();
        if let Some(i) = v.iter().position(|x| x.name == name) {
            return Some((i, false));
        }
        if v.len() >= MAX_INTERPRETERS {
            return None;
        }
        v.push(Interp {
            name: name.to_vec(),
            counters: None,
            events: VecDeque::with_capacity(EVENT_RING),
            dropped: 0,
        });
        Some((v.len() - 1, true))
    }

    /// Whether an interpreter of this name is registered.
    pub fn has(&self, name: &[u8]) -> bool {
        self.lock().iter().any(|x| x.name == name)
    }

    /// Latest counters of interpreter `i`.
    pub fn set_counters(&self, i: usize, c: &Counters) {
        if let Some(x) = self.lock().get_mut(i) {
            x.counters = Some(*c);
        }
    }

    /// One finished collection of interpreter `i`.
    pub fn push_event(&self, i: usize, ev: GcEvent) {
        if let Some(x) = self.lock().get_mut(i) {
            if x.events.len() >= EVENT_RING {
                x.events.pop_front();
                x.dropped += 1;
            }
            x.events.push_back(ev);
        }
    }

    /// Everything one tick sends, in registration order: interpreters that
    /// have reported counters at least once. The names are only to be sent
    /// when more than one interpreter is registered (`include_names`).
    pub fn drain(&self, out: &mut Vec<Drained>) -> bool {
        out.clear();
        let mut v = self.lock();
        let include_names = v.len() > 1;
        for x in v.iter_mut() {
            let Some(c) = x.counters else { continue };
            let mut values = [0u64; 18];
            values[..17].copy_from_slice(&c);
            values[17] = std::mem::take(&mut x.dropped);
            let n = x.events.len().min(EVENTS_PER_TICK);
            out.push(Drained {
                values,
                events: x.events.drain(..n).collect(),
                name: x.name.clone(),
            });
        }
        include_names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(g: u64) -> GcEvent {
        GcEvent {
            generation: g,
            ..GcEvent::default()
        }
    }

    #[test]
    fn register_is_idempotent_and_bounded() {
        let r = GcRegistry::default();
        assert_eq!(r.register(b""), Some((0, true)));
        assert_eq!(r.register(b""), Some((0, false)));
        assert_eq!(r.register(b"site2"), Some((1, true)));
        for i in 2..MAX_INTERPRETERS {
            assert!(r.register(format!("i{i}").as_bytes()).is_some());
        }
        assert_eq!(r.register(b"one too many"), None);
        let long = vec![b'x'; 300];
        assert!(!r.has(&long));
    }

    #[test]
    fn overflow_is_counted_once_then_reset() {
        let r = GcRegistry::default();
        let (i, _) = r.register(b"").unwrap();
        r.set_counters(i, &[1; 17]);
        for k in 0..EVENT_RING + 10 {
            r.push_event(i, ev(k as u64 % 3));
        }
        let mut out = Vec::new();
        assert!(!r.drain(&mut out), "one interpreter: no names");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].values[17], 10);
        assert_eq!(out[0].events.len(), EVENTS_PER_TICK);
        // The rest waits; the dropped count is per tick.
        r.drain(&mut out);
        assert_eq!(out[0].values[17], 0);
        assert_eq!(out[0].events.len(), EVENTS_PER_TICK);
    }

    #[test]
    fn interpreters_without_counters_are_skipped_but_count_for_names() {
        let r = GcRegistry::default();
        let (a, _) = r.register(b"").unwrap();
        r.register(b"other").unwrap();
        r.set_counters(a, &[0; 17]);
        let mut out = Vec::new();
        assert!(r.drain(&mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, b"");
    }
}
