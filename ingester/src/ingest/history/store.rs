//! The history on disk (`serve --state-dir DIR`): checksummed append-only
//! segments, one directory per tier plus one for events.
//!
//! ```text
//! DIR/FORMAT             "mod_wsgi-telemetry state 1\n"
//! DIR/LOCK               held (flock) by the one serve using DIR
//! DIR/t0/<start>.seg     points closed at tier 0, a segment per span
//! DIR/t1/…, DIR/t2/…
//! DIR/events/<start>.seg lifecycle events and completed slow requests
//! ```
//!
//! A record is `len: u32 LE | crc32(payload): u32 LE | payload`. Writes only
//! append; a segment is deleted whole once everything in it is older than
//! its tier's retention, which bounds the disk use. A crash (even SIGKILL
//! mid-write) can only leave a torn record at the end of the newest
//! segment of a directory: opening checks every record and cuts the file
//! before the first bad one. Why not SQLite or redb is in docs/history.md.
//!
//! The events hold request URLs and peer addresses of slow requests: every
//! directory the store makes is 0700 and every file 0600, and no file or
//! directory of ours is reached through a symlink planted in its place
//! (`O_NOFOLLOW`, and our directories checked with `lstat`). The root may
//! itself be a symlink (systemd's `StateDirectory=` makes some).

use super::point::{put_varint, Reader};
use super::{SeriesKey, Tier};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_PREFIX: &str = "mod_wsgi-telemetry state ";
/// Largest record accepted when reading (a point is a few hundred bytes,
/// an event a few KB).
const MAX_RECORD: usize = 1 << 20;

/// Why a state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Written by a newer build.
    #[error("{dir}: written by a newer mod_wsgi-telemetry (state format {found}; this build reads format {FORMAT_VERSION} and older): run the newer build, or point --state-dir elsewhere")]
    Newer {
        /// Directory.
        dir: String,
        /// Version found.
        found: u32,
    },
    /// `FORMAT` unreadable as ours.
    #[error("{dir}/FORMAT: not a mod_wsgi-telemetry state directory ({what}); point --state-dir at an empty or earlier directory")]
    Foreign {
        /// Directory.
        dir: String,
        /// What was wrong.
        what: String,
    },
    /// Another process holds the lock.
    #[error("{dir}: in use by another mod_wsgi-telemetry serve (LOCK is held)")]
    Locked {
        /// Directory.
        dir: String,
    },
    /// I/O.
    #[error("{dir}: {err}")]
    Io {
        /// Directory.
        dir: String,
        /// Error.
        err: io::Error,
    },
}

/// What opening found, for the log and the counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// Records read back.
    pub records: u64,
    /// Bytes cut from torn segment ends.
    pub torn_bytes: u64,
    /// Records skipped for a bad checksum or length inside a segment.
    pub bad_records: u64,
    /// Segments deleted as past their retention.
    pub expired_segments: u64,
    /// Points stamped after `latest` (see [`Store::open`]), left out.
    pub future_records: u64,
}

/// A loaded point: (tier, series, start, encoded point).
pub type LoadedPoint = (usize, SeriesKey, u64, Vec<u8>);

/// Records are kept in memory until written, up to this many bytes per
/// directory (a few hours of points for 50 groups); past it the oldest
/// are dropped (counted in [`Store::dropped_records`]).
const MAX_QUEUED: usize = 16 << 20;

/// Whole records waiting for their segment.
struct Chunk {
    /// Segment start.
    start: u64,
    bytes: Vec<u8>,
    records: u64,
}

/// One directory of segments (a tier, or the events).
struct Dir {
    path: PathBuf,
    /// Seconds per segment.
    span: u64,
    /// Seconds kept.
    retention: u64,
    /// Records not yet written, oldest first: appends only queue, writing
    /// is [`Dir::write_queued`], so a failed write leaves them here for
    /// the next try.
    queue: VecDeque<Chunk>,
    /// Bytes in `queue`.
    queued: usize,
    /// A segment (start, length) whose end may hold part of a failed
    /// write that could not be cut yet: cut before it is appended to.
    torn: Option<(u64, u64)>,
    /// Segments written since the last sync.
    unsynced: Vec<u64>,
}

/// An open state directory.
pub struct Store {
    root: PathBuf,
    _lock: File,
    tiers: Vec<Dir>,
    events: Dir,
    /// Write failures since start (disk full, read-only, removed...).
    pub write_errors: u64,
    /// The latest write failure, until a write succeeds again.
    pub failing: Option<String>,
    /// Bytes written since start.
    pub written_bytes: u64,
    /// Records dropped unwritten because writing failed for so long that
    /// more than `MAX_QUEUED` bytes waited (the memory still has them).
    pub dropped_records: u64,
    buf: Vec<u8>,
}

impl Store {
    /// Opens (creating if needed) `root` for `tiers`, keeping events for
    /// `event_retention` seconds; returns the store, everything it holds
    /// (points coarsest tier first, oldest first; events oldest first) and
    /// what recovery did. What is past its retention counted back from the
    /// newest point held (the datagrams' stamps, as the memory counts) is
    /// deleted, not returned. Points stamped after `latest` (written while
    /// the clock was wrong, or before stamps were bounded) are left out and
    /// do not count as the newest: one of them would expire everything.
    #[allow(clippy::type_complexity)]
    pub fn open(
        root: &Path,
        tiers: &[Tier],
        event_retention: u64,
        latest: u64,
    ) -> Result<(Store, Vec<LoadedPoint>, Vec<(u8, Vec<u8>)>, Recovered), OpenError> {
        let dir = root.display().to_string();
        let io = |err| OpenError::Io {
            dir: dir.clone(),
            err,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io)?;
        // Made if missing, then held open read-only: a descriptor open for
        // writing would keep the file system from being remounted
        // read-only (and the lock needs none).
        drop(
            private(OpenOptions::new().create(true).truncate(false).write(true))
                .open(root.join("LOCK"))
                .map_err(io)?,
        );
        let lock = private(OpenOptions::new().read(true))
            .open(root.join("LOCK"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(OpenError::Locked { dir }),
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        check_format(root, &dir)?;
        let span = |t: &Tier| (t.step * 600).max(600);
        let mut tier_dirs: Vec<Dir> = tiers
            .iter()
            .enumerate()
            .map(|(i, t)| Dir::new(root.join(format!("t{i}")), span(t), t.retention))
            .collect();
        let mut events = Dir::new(root.join("events"), 86400, event_retention);
        let mut rec = Recovered::default();
        let mut points = Vec::new();
        for (i, d) in tier_dirs.iter_mut().enumerate().rev() {
            for payload in d.load(&mut rec).map_err(io)? {
                match decode_point(&payload) {
                    Some((_, start, _)) if start > latest => rec.future_records += 1,
                    Some((key, start, bytes)) => points.push((i, key, start, bytes)),
                    None => rec.bad_records += 1,
                }
            }
        }
        // Expire by the newest stamp held, as the memory does: stamps from
        // a replay of last year stay as long as they would in memory.
        let newest = points.iter().map(|p| p.2).max().unwrap_or(0);
        for (i, d) in tier_dirs.iter_mut().enumerate() {
            d.expire(newest, &mut rec).map_err(io)?;
            let oldest = newest.saturating_sub(d.retention);
            points.retain(|p| p.0 != i || p.2 >= oldest);
        }
        events.expire(newest, &mut rec).map_err(io)?;
        let mut evs = Vec::new();
        for payload in events.load(&mut rec).map_err(io)? {
            match payload.split_first() {
                Some((kind, body)) => evs.push((*kind, body.to_vec())),
                None => rec.bad_records += 1,
            }
        }
        rec.records = (points.len() + evs.len()) as u64;
        Ok((
            Store {
                root: root.to_path_buf(),
                _lock: lock,
                tiers: tier_dirs,
                events,
                write_errors: 0,
                failing: None,
                written_bytes: 0,
                dropped_records: 0,
                buf: Vec::new(),
            },
            points,
            evs,
            rec,
        ))
    }

    /// Appends a point closed at `tier`.
    pub fn append_point(&mut self, tier: usize, key: &SeriesKey, start: u64, point: &[u8]) {
        self.buf.clear();
        put_varint(&mut self.buf, start);
        put_str(&mut self.buf, &key.host);
        match &key.group {
            None => self.buf.push(0),
            Some(g) => {
                self.buf.push(1);
                put_str(&mut self.buf, g);
            }
        }
        self.buf.extend_from_slice(point);
        if let Some(d) = self.tiers.get_mut(tier) {
            self.dropped_records += d.append(start, &self.buf);
        }
    }

    /// Appends an event of `kind` (the caller's code) stamped `stamp`.
    pub fn append_event(&mut self, kind: u8, stamp: u64, body: &[u8]) {
        self.buf.clear();
        self.buf.push(kind);
        self.buf.extend_from_slice(body);
        self.dropped_records += self.events.append(stamp, &self.buf);
    }

    /// Writes the queued records (to the kernel: a SIGKILL loses nothing
    /// written); `sync` also asks the disk (fdatasync). Deletes segments
    /// past their retention counted back from `newest` (the newest stamp
    /// the history has seen, so disk and memory expire alike). Returns
    /// false when writing failed: what was not written stays queued for
    /// the next call.
    pub fn flush(&mut self, newest: u64, sync: bool) -> bool {
        let mut failed = None;
        for d in self
            .tiers
            .iter_mut()
            .chain(std::iter::once(&mut self.events))
        {
            let before = d.queued;
            let r = d
                .write_queued()
                .and_then(|()| if sync { d.sync() } else { Ok(()) });
            self.written_bytes += (before - d.queued) as u64;
            if let Err(e) = r {
                failed.get_or_insert(e.to_string());
            }
            let _ = d.expire(newest, &mut Recovered::default());
        }
        match failed {
            Some(e) => {
                self.write_errors += 1;
                self.failing = Some(e);
                false
            }
            None => {
                self.failing = None;
                true
            }
        }
    }

    /// Records waiting to be written.
    pub fn queued_records(&self) -> u64 {
        self.tiers
            .iter()
            .chain(std::iter::once(&self.events))
            .flat_map(|d| &d.queue)
            .map(|c| c.records)
            .sum()
    }

    /// Bytes of every segment now in the directory.
    pub fn disk_bytes(&self) -> u64 {
        let mut n = 0;
        for d in self.tiers.iter().chain(std::iter::once(&self.events)) {
            if let Ok(rd) = fs::read_dir(&d.path) {
                n += rd
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum::<u64>();
            }
        }
        n
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Dir {
    fn new(path: PathBuf, span: u64, retention: u64) -> Dir {
        Dir {
            path,
            span,
            retention,
            queue: VecDeque::new(),
            queued: 0,
            torn: None,
            unsynced: Vec::new(),
        }
    }

    fn segment(&self, start: u64) -> PathBuf {
        self.path.join(format!("{start:012}.seg"))
    }

    fn segments(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.path)? {
            let e = e?;
            // Only regular files are segments: a symlink is never followed.
            if !e.file_type()?.is_file() {
                continue;
            }
            let name = e.file_name();
            let Some(start) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            v.push((start, e.path()));
        }
        v.sort();
        Ok(v)
    }

    fn expire(&mut self, newest: u64, rec: &mut Recovered) -> io::Result<()> {
        let oldest = newest.saturating_sub(self.retention);
        let segments = match self.segments() {
            // Not made yet (events are read after the tiers expire).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            r => r?,
        };
        for (start, path) in segments {
            if start + self.span <= oldest {
                fs::remove_file(path)?;
                rec.expired_segments += 1;
            }
        }
        Ok(())
    }

    /// Every good record's payload, oldest segment first; cuts a torn tail
    /// of the newest segment.
    fn load(&mut self, rec: &mut Recovered) -> io::Result<Vec<Vec<u8>>> {
        make_dir(&self.path)?;
        let segs = self.segments()?;
        let mut out = Vec::new();
        for (i, (_, path)) in segs.iter().enumerate() {
            let mut bytes = Vec::new();
            private(OpenOptions::new().read(true))
                .open(path)?
                .read_to_end(&mut bytes)?;
            let mut at = 0;
            while at < bytes.len() {
                match record_at(&bytes, at) {
                    Some((payload, next)) => {
                        out.push(payload.to_vec());
                        at = next;
                    }
                    None => break,
                }
            }
            if at < bytes.len() {
                let cut = (bytes.len() - at) as u64;
                if i + 1 == segs.len() {
                    // The torn end of the last write: cut it so appends
                    // continue on a record boundary.
                    private(OpenOptions::new().write(true))
                        .open(path)?
                        .set_len(at as u64)?;
                    rec.torn_bytes += cut;
                } else {
                    rec.bad_records += 1;
                }
            }
        }
        Ok(out)
    }

    /// Queues one record for its segment; returns the records dropped to
    /// keep the queue within [`MAX_QUEUED`].
    fn append(&mut self, stamp: u64, payload: &[u8]) -> u64 {
        let start = stamp - stamp % self.span;
        let Ok(len) = u32::try_from(payload.len()) else {
            return 1;
        };
        if self.queue.back().is_none_or(|c| c.start != start) {
            self.queue.push_back(Chunk {
                start,
                bytes: Vec::new(),
                records: 0,
            });
        }
        let c = self.queue.back_mut().expect("pushed above");
        c.bytes.extend_from_slice(&len.to_le_bytes());
        c.bytes
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        c.bytes.extend_from_slice(payload);
        c.records += 1;
        self.queued += payload.len() + 8;
        let mut dropped = 0;
        while self.queued > MAX_QUEUED && self.queue.len() > 1 {
            let c = self.queue.pop_front().expect("len > 1");
            self.queued -= c.bytes.len();
            dropped += c.records;
        }
        dropped
    }

    /// Writes the queue out, oldest first, each segment opened for the
    /// write and closed after it (no descriptor stays open between
    /// flushes: a directory replaced or remounted is seen at the next
    /// one). A write that fails part way is cut back to the last whole
    /// record, so a later append never follows half a record; what failed
    /// stays queued.
    fn write_queued(&mut self) -> io::Result<()> {
        if self.queue.is_empty() {
            return Ok(());
        }
        make_dir(&self.path)?;
        let mut open: Option<(u64, File, u64)> = None;
        while let Some(c) = self.queue.front() {
            if open.as_ref().is_none_or(|(s, ..)| *s != c.start) {
                let f = private(OpenOptions::new().create(true).append(true))
                    .open(self.segment(c.start))?;
                if let Some((start, len)) = self.torn {
                    if start == c.start {
                        f.set_len(len)?;
                    }
                    self.torn = None;
                }
                let len = f.metadata()?.len();
                open = Some((c.start, f, len));
            }
            let (start, f, len) = open.as_mut().expect("opened above");
            if let Err(e) = f.write_all(&c.bytes) {
                if f.set_len(*len).is_err() {
                    self.torn = Some((*start, *len));
                }
                return Err(e);
            }
            *len += c.bytes.len() as u64;
            if !self.unsynced.contains(start) {
                self.unsynced.push(*start);
            }
            self.queued -= c.bytes.len();
            self.queue.pop_front();
        }
        Ok(())
    }

    /// Asks the disk to keep what was written since the last sync.
    fn sync(&mut self) -> io::Result<()> {
        while let Some(&start) = self.unsynced.last() {
            match private(OpenOptions::new().read(true)).open(self.segment(start)) {
                Ok(f) => f.sync_data()?,
                // Expired meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.unsynced.pop();
        }
        Ok(())
    }
}

/// Files of the store: created 0600, never opened through a symlink.
fn private(o: &mut OpenOptions) -> &mut OpenOptions {
    o.mode(0o600).custom_flags(libc::O_NOFOLLOW)
}

/// Makes one of the store's directories (0700) if missing; refuses a
/// symlink or a file in its place.
fn make_dir(path: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(path)?.file_type().is_dir() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "{}: not a directory (a symlink or a file is in its place; remove it)",
                    path.display()
                )))
            }
        }
        Err(e) => Err(e),
    }
}

/// The record at `at`: its payload and where the next one starts.
fn record_at(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let head = b.get(at..at + 8)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let payload = b.get(at + 8..at + 8 + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, at + 8 + len))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn decode_point(b: &[u8]) -> Option<(SeriesKey, u64, Vec<u8>)> {
    let mut r = Reader { b, at: 0 };
    let start = r.varint()?;
    let text = |r: &mut Reader| -> Option<Arc<str>> {
        let n = usize::try_from(r.varint()?).ok()?;
        Some(Arc::from(std::str::from_utf8(r.bytes(n)?).ok()?))
    };
    let host = text(&mut r)?;
    let group = match r.byte()? {
        0 => None,
        1 => Some(text(&mut r)?),
        _ => return None,
    };
    Some((SeriesKey { host, group }, start, b[r.at..].to_vec()))
}

fn check_format(root: &Path, dir: &str) -> Result<(), OpenError> {
    let path = root.join("FORMAT");
    let foreign = |what: String| OpenError::Foreign {
        dir: dir.to_string(),
        what,
    };
    let read = private(OpenOptions::new().read(true))
        .open(&path)
        .and_then(|mut f| {
            let mut s = String::new();
            f.read_to_string(&mut s).map(|_| s)
        });
    match read {
        Ok(s) => {
            let v = s.trim_end().strip_prefix(FORMAT_PREFIX).ok_or_else(|| {
                foreign(format!(
                    "starts {:?}",
                    s.chars().take(40).collect::<String>()
                ))
            })?;
            let found: u32 = v.parse().map_err(|_| foreign(format!("version {v:?}")))?;
            if found > FORMAT_VERSION {
                return Err(OpenError::Newer {
                    dir: dir.to_string(),
                    found,
                });
            }
            // Older formats would be migrated here; 1 is the first.
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = root.join("FORMAT.tmp");
            let io = |err| OpenError::Io {
                dir: dir.to_string(),
                err,
            };
            let _ = fs::remove_file(&tmp);
            private(OpenOptions::new().write(true).create_new(true))
                .open(&tmp)
                .and_then(|mut f| {
                    f.write_all(format!("{FORMAT_PREFIX}{FORMAT_VERSION}\n").as_bytes())
                })
                .map_err(io)?;
            fs::rename(&tmp, &path).map_err(io)?;
            Ok(())
        }
        Err(err) => Err(OpenError::Io {
            dir: dir.to_string(),
            err,
        }),
    }
}

#[cfg(test)]
mod tests {
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
            let (mut s, pts, evs, _) =
                Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
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
            let (mut s, pts, _, rec) =
                Store::open(d.path(), &DEFAULT_TIERS, 86400, u64::MAX).unwrap();
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
}
