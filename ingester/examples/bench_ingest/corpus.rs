//! The corpus capture rewritten to stand for N processes, looped forever.

use crate::PID_BASE;
use anyhow::{anyhow, Context, Result};
use wire::Kind;

// ---------------------------------------------------------------- corpus

pub(crate) struct Tmpl {
    /// Index of the original pid (order of first appearance).
    pub(crate) orig: usize,
    pub(crate) kind: u8,
    pub(crate) bytes: Vec<u8>,
    pub(crate) stamp: f64,
}

pub(crate) struct Corpus {
    pub(crate) all: Vec<Tmpl>,
    pub(crate) n_orig: usize,
    /// Stamp shift per loop over the capture.
    pub(crate) span: f64,
    pub(crate) field8_dropped: usize,
}

pub(crate) fn load_corpus() -> Result<Corpus> {
    let path = testkit::corpus_path();
    let bin = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut pids: Vec<u32> = Vec::new();
    let mut all = Vec::new();
    let mut dropped = 0;
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for rec in wire::capture::records(&bin) {
        let d = rec.map_err(|off| anyhow!("bad capture record at {off}"))?;
        let mut s = wire::decode(d).map_err(|e| anyhow!("corpus datagram: {e}"))?;
        let orig = match pids.iter().position(|&p| p == s.header.pid) {
            Some(i) => i,
            None => {
                pids.push(s.header.pid);
                pids.len() - 1
            }
        };
        let is_gc = matches!(s.header.kind, Kind::GC_SNAPSHOT | Kind::GC_EVENT);
        let bytes = if is_gc && s.get(wire::id::INTERPRETER_NAME).is_some() {
            s.fields.retain(|(id, _)| *id != wire::id::INTERPRETER_NAME);
            dropped += 1;
            s.encode().map_err(|e| anyhow!("re-encode: {e}"))?
        } else {
            d.to_vec()
        };
        lo = lo.min(s.header.stamp);
        hi = hi.max(s.header.stamp);
        all.push(Tmpl {
            orig,
            kind: s.header.kind.0,
            bytes,
            stamp: s.header.stamp,
        });
    }
    Ok(Corpus {
        all,
        n_orig: pids.len(),
        span: (hi - lo).ceil() + 1.0,
        field8_dropped: dropped,
    })
}

pub(crate) fn patch_header(d: &mut [u8], pid: u32, seq: u32, stamp: f64) {
    d[8..12].copy_from_slice(&pid.to_le_bytes());
    d[12..16].copy_from_slice(&seq.to_le_bytes());
    d[16..24].copy_from_slice(&stamp.to_bits().to_le_bytes());
}

/// The corpus looped forever as `n` processes.
pub(crate) struct Feed<'a> {
    pub(crate) c: &'a Corpus,
    pub(crate) copies: Vec<Vec<u32>>,
    pub(crate) rr: Vec<usize>,
    pub(crate) seqs: Vec<u32>,
    pub(crate) idx: usize,
    pub(crate) pass: u64,
    pub(crate) buf: Vec<u8>,
}

impl<'a> Feed<'a> {
    pub(crate) fn new(c: &'a Corpus, n: usize) -> Feed<'a> {
        let copies = (0..c.n_orig)
            .map(|i| {
                let v: Vec<u32> = (0..n)
                    .filter(|j| j % c.n_orig == i)
                    .map(|j| j as u32)
                    .collect();
                if v.is_empty() {
                    vec![(i % n) as u32]
                } else {
                    v
                }
            })
            .collect();
        Feed {
            c,
            copies,
            rr: vec![0; c.n_orig],
            seqs: vec![0; n],
            idx: 0,
            pass: 0,
            buf: Vec::with_capacity(wire::MAX_DATAGRAM),
        }
    }

    pub(crate) fn next(&mut self) -> &[u8] {
        let t = &self.c.all[self.idx];
        let cs = &self.copies[t.orig];
        let j = cs[self.rr[t.orig] % cs.len()] as usize;
        self.rr[t.orig] += 1;
        self.seqs[j] += 1;
        self.buf.clear();
        self.buf.extend_from_slice(&t.bytes);
        let stamp = t.stamp + self.pass as f64 * self.c.span;
        patch_header(&mut self.buf, PID_BASE + j as u32, self.seqs[j], stamp);
        self.idx += 1;
        if self.idx == self.c.all.len() {
            self.idx = 0;
            self.pass += 1;
        }
        &self.buf
    }
}
