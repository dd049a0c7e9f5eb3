//! History beyond the live window: per group and per host, tiers of points
//! at 1 s, 10 s and 1 min (defaults kept 10 min, 6 h and 7 days), each
//! coarser point merged from finer ones without loss of meaning (see
//! [`point`]). Pure data, like the state model: the caller feeds ticks and
//! asks for ranges; [`store`] keeps the tiers on disk (`ingest::persist`
//! moves closed points from the state to the store).
//!
//! Time is the datagrams' own stamps (so a replayed or simulated week fills
//! the tiers as a real one would). A second stays open for
//! [`History::grace`] seconds after the newest stamp seen, for processes
//! whose tick arrives a little later than their group's; a tick for a
//! second already closed joins the oldest open second instead, so counts are
//! never lost, only placed up to the grace later. Each datum lives in
//! exactly one place of the chain "closed points of the coarsest tier, open
//! point of each tier, open seconds": a query at a tier reads that tier's
//! closed points and every open point below it.

pub mod json;
pub mod point;
pub mod store;

use point::{Point, Tick};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// One tier: points of `step` seconds kept for `retention` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Seconds per point.
    pub step: u64,
    /// Seconds of points kept (counted back from the newest stamp).
    pub retention: u64,
}

/// 1 s for 10 min, 10 s for 6 h, 1 min for 7 days.
pub const DEFAULT_TIERS: [Tier; 3] = [
    Tier {
        step: 1,
        retention: 600,
    },
    Tier {
        step: 10,
        retention: 6 * 3600,
    },
    Tier {
        step: 60,
        retention: 7 * 86400,
    },
];

/// Seconds a tick's stamp may be ahead of the ingester's clock before the
/// history keeps it out ([`History::set_max_ahead`]).
pub const DEFAULT_MAX_AHEAD: u64 = 300;

/// A series: a process group (`group: Some`) or a whole host.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Hostname as the datagrams carry it.
    pub host: Arc<str>,
    /// Process group; `None` for the host's sum over its groups.
    pub group: Option<Arc<str>>,
}

/// A closed point as kept in memory: its encoding.
type Closed = (u64, Box<[u8]>);

/// One series' part of a query, copied out of the history
/// ([`History::extract`]); [`Extract::points`] makes the answer.
#[derive(Debug, Default)]
pub struct Extract {
    /// Seconds per point of the answer.
    step: u64,
    /// The closed points in range, encoded, back to back.
    bytes: Vec<u8>,
    /// Start of each closed point, and where its encoding ends in `bytes`.
    closed: Vec<(u64, usize)>,
    /// Open points in range (sealed), after the closed ones: the open
    /// point of each tier from the one read down, then the open seconds.
    open: Vec<(u64, Point)>,
}

impl Extract {
    /// Decodes and merges the points into `step`-second points, oldest
    /// first; returns the step.
    pub fn points(&self) -> (u64, Vec<(u64, Point)>) {
        let step = self.step;
        let mut out: BTreeMap<u64, Point> = BTreeMap::new();
        let mut add = |start: u64, p: &Point| {
            out.entry(start - start % step).or_default().merge(p);
        };
        let mut at = 0;
        for &(start, end) in &self.closed {
            if let Some(p) = Point::decode(&self.bytes[at..end]) {
                add(start, &p);
            }
            at = end;
        }
        for (start, p) in &self.open {
            add(*start, p);
        }
        (step, out.into_iter().collect())
    }
}

#[derive(Default)]
struct Series {
    /// Seconds not yet closed, by start.
    seconds: BTreeMap<u64, Point>,
    /// Every second before this one is closed.
    closed_until: u64,
    /// Per tier from 1: the open point (start, point).
    open: Vec<Option<(u64, Point)>>,
    /// Per tier: closed points, oldest first.
    rings: Vec<VecDeque<Closed>>,
}

/// Where a process's ticks go: its group's and its host's series (`None`:
/// refused by the series bound), found once and then reused, so a tick
/// costs no hashing of names and no allocation ([`History::record_cached`]).
/// The indices are valid for the history that made them (`history`) until
/// it removes a series (`epoch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesIds {
    history: u64,
    epoch: u64,
    group: Option<u32>,
    host: Option<u32>,
}

/// Tells histories apart, so ids of one are never used in another.
static HISTORIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Tiered history of every series.
pub struct History {
    tiers: Vec<Tier>,
    grace: u64,
    max_series: usize,
    /// Every series; an index changes only when a series is removed.
    series: Vec<(SeriesKey, Series)>,
    /// Index of each series in `series`.
    index: HashMap<SeriesKey, u32>,
    /// This history's number (see [`SeriesIds`]).
    id: u64,
    /// Series removed so far (see [`SeriesIds`]).
    epoch: u64,
    /// Series removed for having no point left.
    pub series_removed: u64,
    /// Newest stamp seen (whole seconds).
    newest: u64,
    /// Ticks refused because `max_series` series exist.
    pub refused_ticks: u64,
    /// Ticks kept out because they were stamped more than `max_ahead`
    /// seconds after the clock.
    pub future_ticks: u64,
    /// The latest such stamp (for the log line).
    pub future_newest: u64,
    /// Seconds a stamp may be ahead of the clock (`None`: any).
    max_ahead: Option<u64>,
    /// Unix seconds now (the wall clock, or a test's).
    clock: fn() -> u64,
    /// Stamps up to this one are known to be within `max_ahead` (the
    /// clock read when a stamp went past it; it only moves forward).
    ahead_limit: u64,
    /// Closed points waiting for the store ([`History::take_closed`]).
    pending: Vec<(usize, SeriesKey, u64, Box<[u8]>)>,
    /// Keep closed points for the store.
    persist: bool,
}

impl History {
    /// An empty history. `tiers` must be non-empty, steps increasing, each
    /// a multiple of the one before, and each tier's retention at least the
    /// next tier's step.
    pub fn new(tiers: &[Tier], max_series: usize) -> Result<History, String> {
        check_tiers(tiers)?;
        Ok(History {
            tiers: tiers.to_vec(),
            grace: 3,
            max_series,
            series: Vec::new(),
            index: HashMap::new(),
            id: HISTORIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            epoch: 0,
            series_removed: 0,
            newest: 0,
            refused_ticks: 0,
            future_ticks: 0,
            future_newest: 0,
            max_ahead: Some(DEFAULT_MAX_AHEAD),
            clock: || crate::clock::wall_now() as u64,
            ahead_limit: 0,
            pending: Vec::new(),
            persist: false,
        })
    }

    /// Stamps more than `secs` seconds after the clock are kept out of the
    /// history (`None`: none are). A clock-broken or hostile sender would
    /// otherwise move `newest` days ahead, and with it the expiry of every
    /// tier: one datagram would erase a week, in memory and on disk.
    pub fn set_max_ahead(&mut self, secs: Option<u64>) {
        self.max_ahead = secs;
        self.ahead_limit = 0;
    }

    /// The latest stamp (whole seconds) the history takes now.
    pub fn latest_allowed(&self) -> u64 {
        self.max_ahead
            .map_or(u64::MAX, |a| (self.clock)().saturating_add(a))
    }

    /// Whether `t` is within the bound; reads the clock only when `t` is
    /// past what an earlier reading allowed (about once a second).
    fn within_clock(&mut self, t: u64) -> bool {
        if t <= self.ahead_limit {
            return true;
        }
        self.ahead_limit = self.ahead_limit.max(self.latest_allowed());
        if t <= self.ahead_limit {
            return true;
        }
        self.future_ticks += 1;
        self.future_newest = self.future_newest.max(t);
        false
    }

    /// Queue closed points for [`History::take_closed`].
    pub fn set_persist(&mut self, on: bool) {
        self.persist = on;
    }

    /// Seconds a second stays open after the newest stamp.
    #[cfg(test)]
    pub fn grace(&self) -> u64 {
        self.grace
    }

    /// Newest stamp seen, Unix seconds.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// Series held.
    pub fn series(&self) -> impl Iterator<Item = &SeriesKey> {
        self.series.iter().map(|(k, _)| k)
    }

    /// The series of `key`, made if missing and the bound allows.
    fn find_or_make(&mut self, key: SeriesKey) -> Option<u32> {
        if let Some(&i) = self.index.get(&key) {
            return Some(i);
        }
        if self.series.len() >= self.max_series {
            return None;
        }
        let i = u32::try_from(self.series.len()).ok()?;
        let tiers = self.tiers.len();
        self.index.insert(key.clone(), i);
        self.series.push((
            key,
            Series {
                open: vec![None; tiers],
                rings: vec![VecDeque::new(); tiers],
                ..Series::default()
            },
        ));
        Some(i)
    }

    fn get(&self, key: &SeriesKey) -> Option<&Series> {
        self.index.get(key).map(|&i| &self.series[i as usize].1)
    }

    /// The series a tick of (`host`, `group`) goes to (made if missing).
    pub fn series_ids(&mut self, host: &str, group: &str) -> SeriesIds {
        let host: Arc<str> = Arc::from(host);
        SeriesIds {
            history: self.id,
            epoch: self.epoch,
            group: self.find_or_make(SeriesKey {
                host: host.clone(),
                group: Some(Arc::from(group)),
            }),
            host: self.find_or_make(SeriesKey { host, group: None }),
        }
    }

    /// Adds one process's tick (stamped `stamp`, Unix seconds) to its
    /// group's and its host's series.
    pub fn record(&mut self, host: &str, group: &str, stamp: f64, tick: &Tick) {
        self.record_cached(&mut None, host, group, stamp, tick);
    }

    /// As [`History::record`], with the process's [`SeriesIds`] kept in
    /// `ids` (looked up when `None` or made by another history; the caller
    /// sets it to `None` when the process's host or group changes).
    pub fn record_cached(
        &mut self,
        ids: &mut Option<SeriesIds>,
        host: &str,
        group: &str,
        stamp: f64,
        tick: &Tick,
    ) {
        if !(stamp.is_finite() && stamp >= 0.0) {
            return;
        }
        let t = stamp as u64;
        if !self.within_clock(t) {
            return;
        }
        let found = match *ids {
            Some(found) if found.history == self.id && found.epoch == self.epoch => found,
            _ => *ids.insert(self.series_ids(host, group)),
        };
        self.newest = self.newest.max(t);
        for i in [found.group, found.host] {
            let Some(i) = i else {
                self.refused_ticks += 1;
                continue;
            };
            let s = &mut self.series[i as usize].1;
            let t = t.max(s.closed_until);
            s.seconds.entry(t).or_default().add_tick(tick);
            self.advance_one(i as usize);
        }
    }

    /// Closes, in every series, the seconds older than the newest stamp
    /// minus the grace (call about once a second).
    /// Also closes the coarser open points whose period is over (a series
    /// that no longer ticks has its last periods closed too), drops points
    /// past their tier's retention, and removes the series left with no
    /// point at all (a group or host gone for longer than the coarsest
    /// tier keeps), so the series bound counts only series with history.
    pub fn advance(&mut self) {
        let limit = self.newest.saturating_sub(self.grace);
        for i in (0..self.series.len()).rev() {
            self.advance_one(i);
            if self.settle(i, limit) {
                let (key, _) = self.series.swap_remove(i);
                self.index.remove(&key);
                if let Some((moved, _)) = self.series.get(i) {
                    self.index.insert(moved.clone(), i as u32);
                }
                self.epoch += 1;
                self.series_removed += 1;
            }
        }
    }

    /// Every second of series `i` before `limit` being closed, closes the
    /// open points of periods that end by then (no tick can join them any
    /// more: a late one joins the oldest open second) and drops the points
    /// past retention. Returns whether the series holds no point.
    fn settle(&mut self, i: usize, limit: u64) -> bool {
        let key = self.series[i].0.clone();
        let mut s = std::mem::take(&mut self.series[i].1);
        if s.seconds.first_key_value().is_none_or(|(t, _)| *t >= limit) {
            s.closed_until = s.closed_until.max(limit);
        }
        for up in 1..self.tiers.len() {
            let over = s.open[up]
                .as_ref()
                .is_some_and(|(start, _)| start + self.tiers[up].step <= s.closed_until);
            if over {
                let (start, p) = s.open[up].take().expect("checked above");
                self.close(&mut s, &key, up, start, p, true);
            }
        }
        for (ring, tier) in s.rings.iter_mut().zip(&self.tiers) {
            let oldest = self.newest.saturating_sub(tier.retention);
            while ring.front().is_some_and(|(t, _)| *t < oldest) {
                ring.pop_front();
            }
        }
        let empty = s.seconds.is_empty()
            && s.open.iter().all(Option::is_none)
            && s.rings.iter().all(VecDeque::is_empty);
        self.series[i].1 = s;
        empty
    }

    /// Closes every open second, grace or not (at shutdown, so a restart
    /// finds the last seconds on disk; a late tick after the restart joins
    /// the next second).
    pub fn close_all(&mut self) {
        for i in 0..self.series.len() {
            self.advance_until(i, u64::MAX);
        }
    }

    fn advance_one(&mut self, i: usize) {
        self.advance_until(i, self.newest.saturating_sub(self.grace));
    }

    fn advance_until(&mut self, i: usize, limit: u64) {
        // Most ticks close nothing: look before taking the series out.
        let due = self.series[i]
            .1
            .seconds
            .keys()
            .next()
            .is_some_and(|&t| t < limit);
        if !due {
            return;
        }
        let key = self.series[i].0.clone();
        let mut s = std::mem::take(&mut self.series[i].1);
        while let Some(e) = s.seconds.first_entry() {
            if *e.key() >= limit {
                break;
            }
            let (start, mut p) = e.remove_entry();
            p.seal();
            s.closed_until = start + 1;
            self.close(&mut s, &key, 0, start, p, true);
        }
        self.series[i].1 = s;
    }

    /// Puts a closed point of `tier` in its ring and folds it into the
    /// next tier's open point (closing that one first when it belongs to
    /// an earlier period).
    /// `persist`: queue this point for the store (not when it came from
    /// there); points closed by the cascade always are.
    fn close(
        &mut self,
        s: &mut Series,
        key: &SeriesKey,
        tier: usize,
        start: u64,
        p: Point,
        persist: bool,
    ) {
        let mut bytes = Vec::with_capacity(64);
        p.encode(&mut bytes);
        let bytes = bytes.into_boxed_slice();
        if persist && self.persist {
            self.pending.push((tier, key.clone(), start, bytes.clone()));
        }
        self.push_closed(s, tier, start, bytes);
        let up = tier + 1;
        if up == self.tiers.len() {
            return;
        }
        let period = start - start % self.tiers[up].step;
        if let Some((open, _)) = &s.open[up] {
            if *open != period {
                let (ostart, op) = s.open[up].take().expect("checked above");
                self.close(s, key, up, ostart, op, true);
            }
        }
        match &mut s.open[up] {
            Some((_, op)) => op.merge(&p),
            slot @ None => *slot = Some((period, p)),
        }
    }

    fn push_closed(&self, s: &mut Series, tier: usize, start: u64, bytes: Box<[u8]>) {
        let ring = &mut s.rings[tier];
        // Points arrive in order, except when a store is loaded.
        let at = ring.partition_point(|(t, _)| *t < start);
        if ring.get(at).is_some_and(|(t, _)| *t == start) {
            ring[at].1 = bytes;
        } else {
            ring.insert(at, (start, bytes));
        }
        let oldest = self.newest.saturating_sub(self.tiers[tier].retention);
        while ring.front().is_some_and(|(t, _)| *t < oldest) {
            ring.pop_front();
        }
    }

    /// Closed points since the last call, for the store.
    pub fn take_closed(&mut self) -> Vec<(usize, SeriesKey, u64, Box<[u8]>)> {
        std::mem::take(&mut self.pending)
    }

    /// Loads a point closed at `tier` by an earlier run (oldest first within
    /// a tier, coarsest tier first): it goes into its ring, and into the
    /// next tier's open point only when that tier has nothing closed for its
    /// period (so a restart rebuilds the open periods from finer points).
    pub fn load(&mut self, tier: usize, key: SeriesKey, start: u64, p: Point) {
        if tier >= self.tiers.len() {
            return;
        }
        // The start, not the end, of the period: a coarse point's end lies
        // up to a step past the newest stamp it holds, and a `newest` moved
        // past it would make queries skip the finer tiers after a restart.
        self.newest = self.newest.max(start);
        let Some(i) = self.find_or_make(key.clone()) else {
            return;
        };
        let i = i as usize;
        let tiers = self.tiers.len();
        let mut s = std::mem::take(&mut self.series[i].1);
        // A closed point's period takes no more ticks (its series may
        // have closed it before its next period began: see `settle`).
        s.closed_until = s.closed_until.max(start + self.tiers[tier].step);
        let up = tier + 1;
        let covered = up < tiers && {
            let step = self.tiers[up].step;
            let period = start - start % step;
            s.rings[up].back().is_some_and(|(t, _)| *t >= period)
        };
        if up < tiers && !covered {
            self.close(&mut s, &key, tier, start, p, false);
        } else {
            let mut b = Vec::new();
            p.encode(&mut b);
            self.push_closed(&mut s, tier, start, b.into_boxed_slice());
        }
        self.series[i].1 = s;
    }

    /// Points of `key` in `[from, to)` (Unix seconds), `step` seconds each
    /// (rounded up to a multiple of the tier read), oldest first, from the
    /// finest tier that still holds `from`. Returns the step used.
    pub fn query(
        &self,
        key: &SeriesKey,
        from: u64,
        to: u64,
        step: u64,
    ) -> (u64, Vec<(u64, Point)>) {
        self.extract(key, from, to, step).points()
    }

    /// The tier a query starting at `from` reads: the finest that still
    /// holds `from` with a step no larger than `step`, else the finest that
    /// holds `from`, else the coarsest.
    fn tier_for(&self, from: u64, step: u64) -> usize {
        let holds = |t: &Tier| self.newest.saturating_sub(t.retention) <= from;
        self.tiers
            .iter()
            .position(|t| holds(t) && t.step <= step.max(1))
            .or_else(|| self.tiers.iter().position(holds))
            .unwrap_or(self.tiers.len() - 1)
    }

    /// What [`History::query`] needs from the history, copied out: the
    /// closed points' encodings in range and the open points. Callers
    /// holding the state lock take this under it and decode and merge
    /// ([`Extract::points`]) after letting go: a 7-day range is ten
    /// thousand points to decode, and ingestion must not wait for that.
    pub fn extract(&self, key: &SeriesKey, from: u64, to: u64, step: u64) -> Extract {
        let tier = self.tier_for(from, step);
        let base = self.tiers[tier].step;
        let mut x = Extract {
            step: step.max(base).div_ceil(base) * base,
            ..Extract::default()
        };
        let Some(s) = self.get(key) else {
            return x;
        };
        let within = |start: u64| start >= from && start < to;
        let lo = s.rings[tier].partition_point(|(t, _)| *t < from);
        for (start, b) in s.rings[tier].range(lo..) {
            if *start >= to {
                break;
            }
            x.bytes.extend_from_slice(b);
            x.closed.push((*start, x.bytes.len()));
        }
        for below in (1..=tier).rev() {
            if let Some((start, p)) = &s.open[below] {
                if within(*start) {
                    x.open.push((*start, p.clone()));
                }
            }
        }
        for (start, p) in &s.seconds {
            if within(*start) {
                let mut p = p.clone();
                p.seal();
                x.open.push((*start, p));
            }
        }
        x
    }

    /// Bytes held (closed points and their bookkeeping; open points are a
    /// few per series).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.series
            .iter()
            .map(|(k, s)| {
                let rings: usize = s
                    .rings
                    .iter()
                    .map(|r| {
                        r.capacity() * std::mem::size_of::<Closed>()
                            + r.iter().map(|(_, b)| b.len()).sum::<usize>()
                    })
                    .sum();
                let open = (s.seconds.len() + s.open.len()) * std::mem::size_of::<Point>();
                rings + open + k.host.len() + k.group.as_ref().map_or(0, |g| g.len()) + 64
            })
            .sum()
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("tiers", &self.tiers)
            .field("series", &self.series.len())
            .field("newest", &self.newest)
            .finish_non_exhaustive()
    }
}

fn check_tiers(tiers: &[Tier]) -> Result<(), String> {
    if tiers.is_empty() {
        return Err("at least one tier is needed".into());
    }
    for (i, t) in tiers.iter().enumerate() {
        if t.step == 0 || t.retention < t.step {
            return Err(format!(
                "tier {}: step must be > 0 and retention >= step",
                i + 1
            ));
        }
        if let Some(n) = tiers.get(i + 1) {
            if n.step <= t.step || n.step % t.step != 0 {
                return Err(format!(
                    "tier {}: step {} s must be a larger multiple of {} s",
                    i + 2,
                    n.step,
                    t.step
                ));
            }
            if t.retention < n.step {
                return Err(format!(
                    "tier {}: retention {} s is shorter than the next tier's step {} s",
                    i + 1,
                    t.retention,
                    n.step
                ));
            }
        }
    }
    Ok(())
}

/// The tiers as one option value (`--history-tiers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierList(pub Vec<Tier>);

/// Parses `STEP:RETENTION[,STEP:RETENTION…]` with `s`, `m`, `h`, `d` units,
/// e.g. `1s:10m,10s:6h,1m:7d`.
pub fn parse_tiers(s: &str) -> Result<TierList, String> {
    let tiers = s
        .split(',')
        .map(|t| {
            let (step, ret) = t
                .split_once(':')
                .ok_or_else(|| format!("{t:?}: expected STEP:RETENTION, e.g. 10s:6h"))?;
            Ok(Tier {
                step: parse_duration(step)?,
                retention: parse_duration(ret)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    check_tiers(&tiers)?;
    Ok(TierList(tiers))
}

/// A duration with a unit (`s`, `m`, `h`, `d`; seconds when none), e.g. `6h`.
pub(crate) fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number and a unit (s, m, h, d)"))?;
    let mult = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?}: unit must be s, m, h or d")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?}: too large"))
}

#[cfg(test)]
mod tests;
