use super::point::tests::tick;
use super::*;

fn key(g: Option<&str>) -> SeriesKey {
    SeriesKey {
        host: Arc::from("h"),
        group: g.map(Arc::from),
    }
}

/// `secs` seconds from `t0`, two processes of group "g" each second
/// (one late by half a second), latency varying with time.
fn feed(h: &mut History, t0: u64, secs: u64) -> Point {
    let mut all = Point::default();
    for i in 0..secs {
        for (pid, off) in [(0u64, 0.2), (1, 1.5)] {
            let ms = 1.0 + ((i * 7 + pid * 3) % 500) as f64;
            let t = tick(1 + (i % 5), ms, 1e6 * (1 + pid) as f64);
            let mut p = Point::default();
            p.add_tick(&t);
            all.totals.add(&p.totals);
            h.record("h", "g", (t0 + i) as f64 + off, &t);
        }
        h.advance();
    }
    all
}

/// Counters equal, float sums equal but for rounding.
fn same(a: &Point, b: &Point) -> bool {
    let (x, y) = (&a.totals, &b.totals);
    let close = |p: f64, q: f64| (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0);
    x.requests_by_class == y.requests_by_class
        && x.request_bytes == y.request_bytes
        && x.phases
            .iter()
            .zip(&y.phases)
            .all(|(p, q)| p.buckets == q.buckets && close(p.sum, q.sum))
        && close(x.cpu_user_seconds, y.cpu_user_seconds)
        && close(x.busy_thread_seconds, y.busy_thread_seconds)
}

fn sum(points: &[(u64, Point)]) -> Point {
    let mut s = Point::default();
    for (_, p) in points {
        s.totals.add(&p.totals);
    }
    s
}

#[test]
fn every_tier_holds_everything_exactly() {
    let mut h = History::new(&DEFAULT_TIERS, 100).unwrap();
    let t0 = 1_700_000_000 - 1_700_000_000 % 3600;
    let all = feed(&mut h, t0, 3 * 3600);
    let end = h.newest() + 1;
    for (from, step, want_step) in [
        (end - 600, 1, 1),
        (t0, 10, 10),
        (t0, 60, 60),
        (t0, 3600, 3600),
    ] {
        let from = from.max(t0);
        let (got_step, pts) = h.query(&key(Some("g")), from, end, step);
        assert_eq!(got_step, want_step);
        if from == t0 {
            assert!(same(&sum(&pts), &all), "step {step}");
        }
        assert!(pts.windows(2).all(|w| w[0].0 + got_step <= w[1].0));
    }
    // The host series is the sum of its (one) group.
    let (_, g) = h.query(&key(Some("g")), t0, end, 3600);
    let (_, host) = h.query(&key(None), t0, end, 3600);
    assert!(same(&sum(&g), &sum(&host)));
    // 1 s points of the last 10 minutes, gauges are per-second sums.
    let (_, fine) = h.query(&key(Some("g")), end - 300, end, 1);
    let p = &fine[fine.len() / 2].1;
    assert_eq!(p.gauges[1].sum, 2.0, "two processes each second");
    assert_eq!(p.gauges[0].sum, 3e6);
    // An hour's p99 is the p99 of the raw seconds merged, not an
    // average of per-minute p99s.
    let (_, hours) = h.query(&key(Some("g")), t0, end, 3600);
    let (_, secs_10) = h.query(&key(Some("g")), t0, t0 + 3600, 10);
    let merged = sum(&secs_10);
    assert!(same(&hours[0].1, &merged));
}

#[test]
fn retention_bounds_each_tier() {
    let tiers = [
        Tier {
            step: 1,
            retention: 60,
        },
        Tier {
            step: 10,
            retention: 600,
        },
    ];
    let mut h = History::new(&tiers, 10).unwrap();
    feed(&mut h, 1000, 3000);
    let s = h.get(&key(Some("g"))).unwrap();
    assert!(s.rings[0].len() <= 61, "{}", s.rings[0].len());
    assert!(s.rings[1].len() <= 61, "{}", s.rings[1].len());
    let (step, old) = h.query(&key(Some("g")), 1000, 2000, 1);
    assert_eq!(step, 10, "past the fine tier, the coarse one answers");
    assert!(old.is_empty(), "past every tier's retention: nothing");
}

#[test]
fn late_ticks_join_the_oldest_open_second() {
    let mut h = History::new(&DEFAULT_TIERS, 10).unwrap();
    h.record("h", "g", 100.0, &tick(1, 1.0, 0.0));
    h.record("h", "g", 110.0, &tick(1, 1.0, 0.0));
    h.advance();
    // 100 is closed now; a tick stamped 99 still counts.
    h.record("h", "g", 99.0, &tick(4, 1.0, 0.0));
    let (_, pts) = h.query(&key(Some("g")), 0, 200, 1);
    assert_eq!(pts.iter().map(|(_, p)| p.requests()).sum::<u64>(), 6);
    assert!(pts.iter().all(|(t, _)| *t >= 100));
}

#[test]
fn series_are_bounded() {
    let mut h = History::new(&DEFAULT_TIERS, 3).unwrap();
    for g in ["a", "b", "c", "d"] {
        h.record("h", g, 10.0, &tick(1, 1.0, 0.0));
    }
    assert_eq!(h.series.len(), 3);
    assert_eq!(h.refused_ticks, 2);
}

#[test]
fn reload_rebuilds_open_periods_from_finer_points() {
    let mut a = History::new(&DEFAULT_TIERS, 10).unwrap();
    a.set_persist(true);
    let t0 = 6000;
    feed(&mut a, t0, 1000);
    let closed = a.take_closed();
    let mut b = History::new(&DEFAULT_TIERS, 10).unwrap();
    let mut sorted = closed.clone();
    sorted.sort_by_key(|(tier, _, start, _)| (std::cmp::Reverse(*tier), *start));
    for (tier, k, start, bytes) in sorted {
        b.load(tier, k, start, Point::decode(&bytes).unwrap());
    }
    // A reload never puts `newest` past what was seen (a coarse
    // point's end would: queries would then skip the finer tiers).
    assert!(b.newest() <= a.newest(), "{} > {}", b.newest(), a.newest());
    let end = a.newest() - a.grace();
    for step in [1, 10, 60] {
        let (_, pa) = a.query(&key(Some("g")), t0, end, step);
        let (_, pb) = b.query(&key(Some("g")), t0, end, step);
        assert!(same(&sum(&pa), &sum(&pb)), "step {step}");
        assert_eq!(pa.len(), pb.len(), "step {step}");
    }
}

/// The bound docs/history.md states: 50 groups on one host, every tier
/// full (7 days), points with a typical spread of latencies.
#[test]
fn fifty_groups_for_a_week_stay_within_the_stated_memory() {
    let mut h = History::new(&DEFAULT_TIERS, 100).unwrap();
    let mut p = Point::default();
    for (i, ms) in [0.4, 0.9, 2.0, 4.5, 9.0, 30.0, 120.0, 900.0]
        .iter()
        .enumerate()
    {
        p.add_tick(&tick(1 + i as u64, *ms, 3e8));
    }
    p.seal();
    let newest = 10_000_000u64;
    for g in 0..50 {
        let key = SeriesKey {
            host: Arc::from("web-1"),
            group: Some(Arc::from(format!("group-{g}"))),
        };
        for (tier, t) in DEFAULT_TIERS.iter().enumerate().rev() {
            let n = t.retention / t.step;
            for i in 0..n {
                let start = newest - t.retention + i * t.step;
                h.load(tier, key.clone(), start - start % t.step, p.clone());
            }
        }
    }
    let bytes = h.heap_bytes();
    let per_group = bytes / 50;
    eprintln!("50 groups x 7 days: {bytes} bytes ({per_group} per group)");
    assert!(bytes < 160 << 20, "{bytes} bytes");
}

/// A stamp a month ahead of the clock is kept out: `newest` does not
/// move, nothing expires, the tick is counted; stamps up to the bound
/// ahead, and old ones (a replay), are taken as before.
#[test]
fn far_future_stamps_do_not_move_the_history() {
    let mut h = History::new(&DEFAULT_TIERS, 10).unwrap();
    h.clock = || 2_000_000;
    let old = 1_000_000;
    feed(&mut h, old, 120);
    let newest = h.newest();
    let count = |h: &History| {
        let (_, pts) = h.query(&key(Some("g")), old, old + 200, 1);
        pts.iter().map(|(_, p)| p.requests()).sum::<u64>()
    };
    let before = count(&h);
    assert!(before > 0);
    let mut ids = None;
    let far = (2_000_000 + 30 * 86400) as f64;
    h.record_cached(&mut ids, "h", "g", far, &tick(1, 1.0, 0.0));
    h.record("h", "evil", far, &tick(1, 1.0, 0.0));
    h.advance();
    assert_eq!(h.newest(), newest);
    assert_eq!((h.future_ticks, h.future_newest), (2, far as u64));
    assert_eq!(count(&h), before, "nothing expired");
    assert!(h.series().all(|k| k.group.as_deref() != Some("evil")));
    // Within the bound: taken.
    let near = (2_000_000 + DEFAULT_MAX_AHEAD) as f64;
    h.record("h", "g", near, &tick(1, 1.0, 0.0));
    assert_eq!((h.newest(), h.future_ticks), (near as u64, 2));
}

/// A group that stops ticking keeps its series while any tier holds a
/// point of it (its last periods closed, so they are kept and written),
/// then loses it: the slot is free for another series, and a process
/// of the group that comes back gets a new one.
#[test]
fn series_without_points_are_removed() {
    let tiers = [
        Tier {
            step: 1,
            retention: 20,
        },
        Tier {
            step: 10,
            retention: 120,
        },
    ];
    let mut h = History::new(&tiers, 3).unwrap();
    h.set_persist(true);
    let mut gone = None;
    for i in 0..25u64 {
        h.record_cached(
            &mut gone,
            "h",
            "gone",
            1000.0 + i as f64,
            &tick(2, 1.0, 0.0),
        );
        h.record("h", "stays", 1000.0 + i as f64, &tick(1, 1.0, 0.0));
        h.advance();
    }
    let requests = |h: &History, g: &str| {
        let (_, pts) = h.query(&key(Some(g)), 0, 10_000, 10);
        pts.iter().map(|(_, p)| p.requests()).sum::<u64>()
    };
    for i in 25..100u64 {
        h.record("h", "stays", 1000.0 + i as f64, &tick(1, 1.0, 0.0));
        h.advance();
    }
    // Its last period (1020-1029, 5 s of ticks) closed: all of it is
    // in the 10 s tier, and queued for the store.
    assert_eq!(requests(&h, "gone"), 50);
    let written: u64 = h
        .take_closed()
        .iter()
        .filter(|(t, k, ..)| *t == 1 && k.group.as_deref() == Some("gone"))
        .map(|(.., b)| Point::decode(b).unwrap().requests())
        .sum();
    assert_eq!(written, 50);
    assert_eq!(h.series().count(), 3);
    // A group that is new while the bound is full: refused.
    h.record("h", "new", 1100.0, &tick(1, 1.0, 0.0));
    assert_eq!(h.refused_ticks, 1);
    for i in 100..160u64 {
        h.record("h", "stays", 1000.0 + i as f64, &tick(1, 1.0, 0.0));
        h.advance();
    }
    // Past the 10 s tier's 120 s: nothing of "gone" is left.
    assert_eq!(requests(&h, "gone"), 0);
    let names: Vec<_> = h.series().map(|k| k.group.clone()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(!names.contains(&Some(Arc::from("gone"))));
    assert_eq!(h.series_removed, 1);
    h.record("h", "new", 1160.0, &tick(1, 1.0, 0.0));
    assert_eq!(h.refused_ticks, 1, "its slot is free");
    // The process's cached ids are stale: looked up again.
    h.record_cached(&mut gone, "h", "gone", 1161.0, &tick(3, 1.0, 0.0));
    assert_eq!(
        h.refused_ticks, 2,
        "bound full again: refused, not misfiled"
    );
    assert_eq!(requests(&h, "new"), 1);
    assert_eq!(requests(&h, "stays"), 120, "its last 120 s");
}

/// How queries were answered before [`History::extract`]: decoding
/// and merging in place, under the caller's lock.
fn query_in_place(h: &History, k: &SeriesKey, from: u64, to: u64, step: u64) -> Vec<(u64, Point)> {
    let s = h.get(k).unwrap();
    let tier = h.tier_for(from, step);
    let base = h.tiers[tier].step;
    let step = step.max(base).div_ceil(base) * base;
    let mut out: BTreeMap<u64, Point> = BTreeMap::new();
    let mut add = |start: u64, p: &Point| {
        if start >= from && start < to {
            out.entry(start - start % step).or_default().merge(p);
        }
    };
    for (start, b) in &s.rings[tier] {
        add(*start, &Point::decode(b).unwrap());
    }
    for below in (1..=tier).rev() {
        if let Some((start, p)) = &s.open[below] {
            add(*start, p);
        }
    }
    for (start, p) in &s.seconds {
        let mut p = p.clone();
        p.seal();
        add(*start, &p);
    }
    out.into_iter().collect()
}

/// A simulated week: what the copy-then-decode query answers is
/// exactly (every float bit) what decoding in place answered, for every
/// range the UI offers, on the group and its host, at every tier.
#[test]
fn extracted_queries_answer_exactly_as_in_place_ones() {
    let mut h = History::new(&DEFAULT_TIERS, 10).unwrap();
    let t0 = 1_700_000_000;
    // A tick every 3 s: every tier full, quick in a debug build.
    for i in (0..7 * 86400 + 1234).step_by(3) {
        let ms = 1.0 + ((i * 7) % 900) as f64;
        h.record("h", "g", (t0 + i) as f64 + 0.3, &tick(1 + i % 4, ms, 1e6));
        h.advance();
    }
    let end = h.newest() + 1;
    let mut compared = 0;
    for k in [key(Some("g")), key(None)] {
        for range in [600, 3600, 6 * 3600, 86400, 7 * 86400] {
            for step in [1, 7, 10, 60, 300, range / 300] {
                let from = end - range;
                let want = query_in_place(&h, &k, from, end, step);
                let (_, got) = h.query(&k, from, end, step);
                assert!(!want.is_empty());
                assert_eq!(got, want, "range {range} step {step}");
                compared += got.len();
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
}

#[test]
fn tiers_parse_and_are_checked() {
    assert_eq!(parse_tiers("1s:10m,10s:6h,1m:7d").unwrap().0, DEFAULT_TIERS);
    assert!(parse_tiers("1s:10m,15s:6h").is_ok());
    for bad in [
        "",
        "1s",
        "10s:6h,1s:7d",
        "1s:10m,15s:6h,20s:7d",
        "1x:10m",
        "1s:5s,10s:1h",
    ] {
        assert!(parse_tiers(bad).is_err(), "{bad}");
    }
}
