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
mod tests;
