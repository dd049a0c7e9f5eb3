//! The direct JSON writer: stored (packed) samples and GC records written
//! straight to bytes, without unpacking them into values first, and the
//! chunked output and size estimates the snapshot budget uses.
//!
//! Every function here writes exactly the bytes serde_json writes for the
//! same value (the tests compare the two on the corpus and on edge cases).

use super::live::to_string;
use crate::ingest::state::packed::{Packed, PackedValue};
use crate::ingest::state::GcRecord;
use wire::field_name;

/// `"name":` for field ids below this bound, escaped once.
const KEY_TABLE: usize = 512;

fn field_key(id: u16) -> std::borrow::Cow<'static, [u8]> {
    static KEYS: std::sync::OnceLock<Vec<Box<[u8]>>> = std::sync::OnceLock::new();
    let key = |id: u16| -> Vec<u8> {
        let mut k = to_string(&*field_name(id)).into_bytes();
        k.push(b':');
        k
    };
    if (id as usize) < KEY_TABLE {
        let keys = KEYS.get_or_init(|| (0..KEY_TABLE as u16).map(|i| key(i).into()).collect());
        std::borrow::Cow::Borrowed(&keys[id as usize])
    } else {
        std::borrow::Cow::Owned(key(id))
    }
}

pub(super) fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn push_i32(out: &mut Vec<u8>, v: i32) {
    if (0..10).contains(&v) {
        out.push(b'0' + v as u8);
    } else {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
}

/// As serde_json: shortest round-trip form (zmij, as serde_json), `null`
/// when not finite.
fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.to_bits() == 0 {
        out.extend_from_slice(b"0.0");
    } else if v.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

pub(super) fn push_str(out: &mut Vec<u8>, v: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

fn le_i32(c: &[u8]) -> i32 {
    i32::from_le_bytes([c[0], c[1], c[2], c[3]])
}

fn le_f64(c: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&c[..8]);
    f64::from_bits(u64::from_le_bytes(a))
}

/// Writes `[e0,e1,...]` of a dense array of `width`-byte elements.
fn push_dense(
    out: &mut Vec<u8>,
    b: &[u8],
    width: usize,
    mut value: impl FnMut(&mut Vec<u8>, &[u8]),
) {
    out.push(b'[');
    for (j, c) in b.chunks_exact(width).enumerate() {
        if j > 0 {
            out.push(b',');
        }
        value(out, c);
    }
    out.push(b']');
}

/// `zero,zero,...,` repeated to fill `N` bytes.
const fn zeros<const N: usize>(zero: &[u8]) -> [u8; N] {
    let mut p = [0u8; N];
    let unit = zero.len() + 1;
    let mut k = 0;
    while k < N {
        let j = k % unit;
        p[k] = if j < zero.len() { zero[j] } else { b',' };
        k += 1;
    }
    p
}

const ZEROS_I32: [u8; 128] = zeros(b"0");
const ZEROS_F64: [u8; 256] = zeros(b"0.0");

/// Writes `n` absent elements of a sparse array, comma-separated (the
/// caller writes the comma before the first one): runs of zeros are the
/// bulk of the histograms, copied from a repeated pattern.
/// `pattern` is [`zeros`] of that element text.
fn push_zeros(out: &mut Vec<u8>, mut n: usize, pattern: &[u8]) {
    let unit = pattern.iter().position(|&b| b == b',').unwrap_or(0) + 1;
    let run = pattern.len() / unit;
    while n > 0 {
        let m = n.min(run);
        out.extend_from_slice(&pattern[..m * unit - 1]);
        n -= m;
        if n > 0 {
            out.push(b',');
        }
    }
}

/// Writes `[e0,e1,...]` of a sparse array: `pairs` are `width`-byte records
/// of a u16 index then the value, `zeros` the [`zeros`] pattern of an
/// absent element.
fn push_sparse(
    out: &mut Vec<u8>,
    len: usize,
    pairs: &[u8],
    width: usize,
    zeros: &[u8],
    mut value: impl FnMut(&mut Vec<u8>, &[u8]),
) {
    out.push(b'[');
    let mut i = 0;
    for c in pairs.chunks_exact(width) {
        let at = u16::from_le_bytes([c[0], c[1]]) as usize;
        if at > i {
            if i > 0 {
                out.push(b',');
            }
            push_zeros(out, at - i, zeros);
        }
        if at > 0 {
            out.push(b',');
        }
        value(out, &c[2..]);
        i = at + 1;
    }
    if len > i {
        if i > 0 {
            out.push(b',');
        }
        push_zeros(out, len - i, zeros);
    }
    out.push(b']');
}

/// A packed sample's fields as a JSON object, in wire order (as [`Fields`]).
fn push_fields(out: &mut Vec<u8>, p: &Packed) {
    out.push(b'{');
    for (i, (id, v)) in p.fields().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&field_key(id));
        match v {
            PackedValue::U64(x) => push_u64(out, x),
            PackedValue::F64(x) => push_f64(out, x),
            PackedValue::I64(x) => push_i64(out, x),
            PackedValue::Bytes(b) => push_str(out, &String::from_utf8_lossy(b)),
            PackedValue::I32Dense(b) => push_dense(out, b, 4, |o, c| push_i32(o, le_i32(c))),
            PackedValue::F64Dense(b) => push_dense(out, b, 8, |o, c| push_f64(o, le_f64(c))),
            PackedValue::I32Sparse { len, pairs } => {
                push_sparse(out, len, pairs, 6, &ZEROS_I32, |o, c| {
                    push_i32(o, le_i32(c))
                })
            }
            PackedValue::F64Sparse { len, pairs } => {
                push_sparse(out, len, pairs, 10, &ZEROS_F64, |o, c| {
                    push_f64(o, le_f64(c))
                })
            }
        }
    }
    out.push(b'}');
}

/// A stored periodic sample as its `{"type":"sample",...}` message (the
/// bytes of `to_string(&SampleMsg(&unpack(p)))`).
pub(super) fn push_sample_msg(out: &mut Vec<u8>, p: &Packed) {
    let h = p.header();
    out.extend_from_slice(b"{\"type\":\"sample\",\"kind\":");
    push_str(out, &h.kind.name());
    out.extend_from_slice(b",\"pid\":");
    push_u64(out, h.pid as u64);
    out.extend_from_slice(b",\"seq\":");
    push_u64(out, h.seq as u64);
    out.extend_from_slice(b",\"stamp\":");
    push_f64(out, h.stamp);
    out.extend_from_slice(b",\"fields\":");
    push_fields(out, p);
    out.push(b'}');
}

pub(super) fn push_gc_entry(out: &mut Vec<u8>, g: &GcRecord, with_interpreter: bool) {
    out.extend_from_slice(b"{\"stamp\":");
    push_f64(out, g.stamp);
    if with_interpreter {
        out.extend_from_slice(b",\"interpreter\":");
        push_str(out, &g.interpreter);
    }
    out.extend_from_slice(b",\"fields\":");
    push_fields(out, &g.packed);
    out.push(b'}');
}

/// Bytes of one item as written.
pub(super) fn len_of(f: impl FnOnce(&mut Vec<u8>)) -> usize {
    let mut v = Vec::with_capacity(4096);
    f(&mut v);
    v.len()
}

/// Estimated JSON bytes per item of a ring: the largest of its oldest,
/// middle and newest item, plus 10 %.
pub(super) fn est3<T>(items: &[T], f: impl Fn(&mut Vec<u8>, &T)) -> usize {
    let n = items.len();
    if n == 0 {
        return 0;
    }
    let m = [0, n / 2, n - 1]
        .iter()
        .map(|&i| len_of(|o| f(o, &items[i])))
        .max()
        .unwrap_or(0);
    m + m / 10
}

pub(super) fn newest<T>(items: &[T], k: usize) -> &[T] {
    &items[items.len().saturating_sub(k)..]
}

/// Output in chunks: the buffer is handed to `emit` whenever it holds
/// `chunk` bytes or more, between items. `emit` returning false (the
/// receiver went away) stops the writer.
pub(super) struct Chunked<'a> {
    pub(super) buf: Vec<u8>,
    pub(super) chunk: usize,
    pub(super) emit: &'a mut dyn FnMut(Vec<u8>) -> bool,
    pub(super) open: bool,
}

impl Chunked<'_> {
    /// Called between items; false once the receiver is gone.
    pub(super) fn boundary(&mut self) -> bool {
        if self.open && self.buf.len() >= self.chunk {
            let cap = self.chunk + self.chunk / 4;
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
            self.open = (self.emit)(full);
        }
        self.open
    }

    pub(super) fn finish(mut self) {
        if self.open && !self.buf.is_empty() {
            (self.emit)(std::mem::take(&mut self.buf));
        }
    }
}

/// Writes the newest `k` items as a JSON array and says whether older
/// items were left out.
pub(super) fn write_newest<T>(
    out: &mut Chunked<'_>,
    items: &[T],
    k: usize,
    f: impl Fn(&mut Vec<u8>, &T),
) -> bool {
    let kept = newest(items, k);
    out.buf.push(b'[');
    for (i, it) in kept.iter().enumerate() {
        if i > 0 {
            out.buf.push(b',');
        }
        f(&mut out.buf, it);
        if !out.boundary() {
            break;
        }
    }
    out.buf.push(b']');
    kept.len() < items.len()
}
