use super::super::point::{tests::tick, Point};
use super::super::{History, DEFAULT_TIERS};
use super::*;

fn key(g: &str) -> SeriesKey {
    SeriesKey {
        host: Arc::from("host"),
        group: Some(Arc::from(g)),
    }
}

fn point(n: u64) -> Vec<u8> {
    let mut p = Point::default();
    p.add_tick(&tick(n, 5.0, 1e6));
    p.seal();
    let mut b = Vec::new();
    p.encode(&mut b);
    b
}

#[test]
fn points_and_events_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let now = 1_000_000;
    {
        let (mut s, pts, evs, _) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
        assert!(pts.is_empty() && evs.is_empty());
        for i in 0..100 {
            s.append_point(0, &key("g"), now - 100 + i, &point(i));
        }
        s.append_point(2, &key("g"), now - 3600, &point(7));
        s.append_event(3, now, b"{\"kind\":\"x\"}");
        assert!(s.flush(now, true));
        assert!(s.disk_bytes() > 0);
    }
    let (_, pts, evs, rec) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    assert_eq!(rec.records, 102);
    assert_eq!(pts[0].0, 2, "coarsest tier first");
    assert_eq!(pts[1..].len(), 100);
    assert!(pts[1..].windows(2).all(|w| w[0].2 < w[1].2));
    assert_eq!(pts[5].3, point(4));
    assert_eq!(evs, vec![(3, b"{\"kind\":\"x\"}".to_vec())]);
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let d = tempfile::tempdir().unwrap();
    let now = 2_000_000;
    {
        let (mut s, ..) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
        for i in 0..10 {
            s.append_point(0, &key("g"), now + i, &point(1));
        }
        s.flush(now, false);
    }
    let seg = fs::read_dir(d.path().join("t0"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let full = fs::metadata(&seg).unwrap().len();
    // A write cut in the middle of the last record.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - 3)
        .unwrap();
    {
        let (mut s, pts, _, rec) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
        assert_eq!(pts.len(), 9);
        assert!(rec.torn_bytes > 0);
        s.append_point(0, &key("g"), now + 10, &point(2));
        s.flush(now, false);
    }
    let (_, pts, _, rec) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    assert_eq!(pts.len(), 10);
    assert_eq!(rec.torn_bytes, 0);
    // Garbage in place of a checksum is not read as data either.
    let mut b = fs::read(&seg).unwrap();
    let n = b.len();
    b[n - 1] ^= 0xff;
    fs::write(&seg, b).unwrap();
    let (_, pts, ..) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    assert_eq!(pts.len(), 9);
}

/// Segments expire by the newest stamp the points carry, as the
/// memory's tiers do, not by the wall clock: a history of stamps from
/// long ago stays whole on disk as long as it stays in memory.
#[test]
fn expired_segments_are_deleted() {
    let d = tempfile::tempdir().unwrap();
    let t0 = 10_000_000;
    {
        let (mut s, ..) = Store::open(d.path(), &DEFAULT_TIERS, 3600, u64::MAX).unwrap();
        for i in 0..3 {
            s.append_point(0, &key("g"), t0 + i * 600, &point(1));
        }
        s.append_event(1, t0, b"e");
        assert!(s.flush(t0 + 1200, false));
    }
    // Stamped in 1970, read today: nothing is older than 600 s before
    // the newest point but the first segment, gone at the flush.
    let (mut s, pts, evs, rec) = Store::open(d.path(), &DEFAULT_TIERS, 3600, u64::MAX).unwrap();
    assert_eq!(pts.len(), 2);
    assert_eq!(evs.len(), 1);
    assert_eq!(rec.expired_segments, 0);
    // A point a day later: the rest is past every retention.
    s.append_point(0, &key("g"), t0 + 86400, &point(1));
    assert!(s.flush(t0 + 86400, false));
    drop(s);
    let (_, pts, evs, rec) = Store::open(d.path(), &DEFAULT_TIERS, 3600, u64::MAX).unwrap();
    assert_eq!(pts.len(), 1);
    assert!(evs.is_empty());
    assert_eq!(rec.expired_segments, 0, "deleted at the flush already");
}

#[test]
fn newer_foreign_and_locked_directories_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let held = Store::open(d.path(), &DEFAULT_TIERS, 60, u64::MAX).unwrap();
    let e = Store::open(d.path(), &DEFAULT_TIERS, 60, u64::MAX)
        .err()
        .unwrap();
    assert!(matches!(e, OpenError::Locked { .. }), "{e}");
    drop(held);
    fs::write(d.path().join("FORMAT"), "mod_wsgi-telemetry state 2\n").unwrap();
    let e = Store::open(d.path(), &DEFAULT_TIERS, 60, u64::MAX)
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .contains("newer mod_wsgi-telemetry (state format 2"),
        "{e}"
    );
    fs::write(d.path().join("FORMAT"), "something else\n").unwrap();
    let e = Store::open(d.path(), &DEFAULT_TIERS, 60, u64::MAX)
        .err()
        .unwrap();
    assert!(matches!(e, OpenError::Foreign { .. }), "{e}");
}

#[test]
fn unwritable_directory_counts_errors_and_keeps_going() {
    let d = tempfile::tempdir().unwrap();
    let (mut s, ..) = Store::open(d.path(), &DEFAULT_TIERS, 60, u64::MAX).unwrap();
    // The tier directory replaced by a file: every create fails.
    fs::remove_dir_all(d.path().join("t0")).unwrap();
    fs::write(d.path().join("t0"), b"x").unwrap();
    s.append_point(0, &key("g"), 5, &point(1));
    assert!(!s.flush(5, false));
    assert_eq!(s.write_errors, 1);
    assert!(s.failing.is_some());
    // Kept for the next try; written once the directory is usable.
    s.append_point(0, &key("g"), 6, &point(2));
    assert_eq!(s.queued_records(), 2);
    fs::remove_file(d.path().join("t0")).unwrap();
    assert!(s.flush(6, false));
    assert!(s.failing.is_none());
    assert_eq!(s.queued_records(), 0);
    drop(s);
    let (_, pts, ..) = Store::open(d.path(), &DEFAULT_TIERS, 60, u64::MAX).unwrap();
    assert_eq!(pts.len(), 2);
    assert_eq!(pts[1].3, point(2));
}

#[test]
fn directories_are_0700_files_0600() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("state/nested");
    let (mut s, ..) = Store::open(&root, &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    s.append_point(0, &key("g"), 100, &point(1));
    s.append_event(2, 100, b"slow");
    assert!(s.flush(100, true));
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777;
    let mut seen = 0;
    for dir in [d.path().join("state"), root.clone()] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    for e in walk(&root) {
        let want = if e.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&e), want, "{}", e.display());
        seen += 1;
    }
    // LOCK, FORMAT, t0 t1 t2 events, a segment in t0 and in events.
    assert_eq!(seen, 8);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        }
        out.push(e);
    }
    out
}

#[test]
fn planted_symlinks_are_not_followed() {
    let d = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"not ours").unwrap();
    let root = d.path().join("state");
    drop(Store::open(&root, &DEFAULT_TIERS, 86400, u64::MAX).unwrap());
    // A segment that is a symlink: skipped when loading, never
    // written through (the append to its name fails and is counted).
    let seg = root.join("t0").join(format!("{:012}.seg", 0));
    std::os::unix::fs::symlink(&victim, &seg).unwrap();
    let (mut s, pts, ..) = Store::open(&root, &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    assert!(pts.is_empty());
    s.append_point(0, &key("g"), 100, &point(1));
    s.flush(100, false);
    assert_eq!(s.write_errors, 1, "{:?}", s.failing);
    drop(s);
    assert_eq!(fs::read(&victim).unwrap(), b"not ours");
    // A tier directory that is a symlink: refused, not followed.
    fs::remove_file(&seg).unwrap();
    fs::remove_dir_all(root.join("t1")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("t1")).unwrap();
    let e = Store::open(&root, &DEFAULT_TIERS, 86400, u64::MAX)
        .err()
        .unwrap();
    assert!(e.to_string().contains("not a directory"), "{e}");
    fs::remove_file(root.join("t1")).unwrap();
    // FORMAT as a symlink: refused, not read through.
    fs::remove_file(root.join("FORMAT")).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("FORMAT")).unwrap();
    assert!(Store::open(&root, &DEFAULT_TIERS, 86400, u64::MAX).is_err());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[test]
fn a_history_reloaded_from_disk_answers_the_same() {
    let d = tempfile::tempdir().unwrap();
    let mut a = History::new(&DEFAULT_TIERS, 10).unwrap();
    a.set_persist(true);
    let (mut s, ..) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    let t0 = 50_000u64;
    for i in 0..2000 {
        a.record(
            "host",
            "g",
            (t0 + i) as f64 + 0.5,
            &tick(1 + i % 3, 1.0 + (i % 90) as f64, 1e6),
        );
        a.advance();
        for (tier, k, start, b) in a.take_closed() {
            s.append_point(tier, &k, start, &b);
        }
    }
    s.flush(a.newest(), true);
    drop(s);
    let (_, pts, ..) = Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
    let mut b = History::new(&DEFAULT_TIERS, 10).unwrap();
    for (tier, k, start, bytes) in pts {
        b.load(tier, k, start, Point::decode(&bytes).unwrap());
    }
    let end = a.newest() - a.grace();
    for step in [1, 10, 60, 600] {
        let (_, pa) = a.query(&key("g"), t0, end, step);
        let (_, pb) = b.query(&key("g"), t0, end, step);
        let reqs = |v: &[(u64, Point)]| {
            v.iter()
                .map(|(t, p)| (*t, p.requests()))
                .collect::<Vec<_>>()
        };
        assert_eq!(reqs(&pa), reqs(&pb), "step {step}");
    }
}
