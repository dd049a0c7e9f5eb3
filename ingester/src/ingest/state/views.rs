//! Reading a decoded datagram: the [`View`] the model applies, over an
//! owned [`Sample`], a [`SampleRef`] read in place, or an [`Indexed`]
//! reference whose fields are listed once; and the typed field getters the
//! model uses.

use super::packed::{kept_as_is, pack, pack_listed, pack_ref, Packed};
use std::borrow::Cow;
use wire::{Header, Sample, SampleRef, Value, ValueRef};

/// What the model reads from a decoded datagram, owned ([`Sample`]) or
/// read in place ([`SampleRef`]).
pub(super) trait View: Arrays {
    fn header(&self) -> Header;
    /// Field `fid` when it is a scalar (U64, F64 or I64).
    fn scalar(&self, fid: u16) -> Option<Value>;
    fn text(&self, fid: u16) -> Option<Cow<'_, str>>;
    fn pack(&self) -> Packed;

    fn f64(&self, fid: u16) -> Option<f64> {
        self.scalar(fid)?.as_f64()
    }
    fn u64(&self, fid: u16) -> Option<u64> {
        self.scalar(fid)?.as_u64()
    }
}

impl View for Sample {
    fn header(&self) -> Header {
        self.header
    }
    fn scalar(&self, fid: u16) -> Option<Value> {
        match self.get(fid)? {
            v @ (Value::U64(_) | Value::F64(_) | Value::I64(_)) => Some(v.clone()),
            _ => None,
        }
    }
    fn text(&self, fid: u16) -> Option<Cow<'_, str>> {
        Sample::text(self, fid)
    }
    fn pack(&self) -> Packed {
        pack(self)
    }
}

/// A scalar field read in place as the owned value (`None` for text and
/// arrays).
fn scalar_of(v: ValueRef<'_>) -> Option<Value> {
    Some(match v {
        ValueRef::U64(x) => Value::U64(x),
        ValueRef::F64(x) => Value::F64(x),
        ValueRef::I64(x) => Value::I64(x),
        _ => return None,
    })
}

impl View for SampleRef<'_> {
    fn header(&self) -> Header {
        self.header
    }
    fn scalar(&self, fid: u16) -> Option<Value> {
        scalar_of(self.get(fid)?)
    }
    fn text(&self, fid: u16) -> Option<Cow<'_, str>> {
        SampleRef::text(self, fid)
    }
    fn pack(&self) -> Packed {
        pack_ref(self)
    }
}

/// A [`SampleRef`] with its fields listed once, in wire order, so each
/// lookup scans a short array of ids instead of walking the TLV records
/// again (a REQUEST datagram is asked for a dozen fields). Held on the stack;
/// a datagram with more fields than fit falls back to [`SampleRef::get`].
pub(super) struct Indexed<'a> {
    r: SampleRef<'a>,
    /// `None` when the datagram has more than [`Indexed::CAP`] fields.
    pub(super) n: Option<usize>,
    ids: [u16; Indexed::CAP],
    vals: [ValueRef<'a>; Indexed::CAP],
}

impl<'a> Indexed<'a> {
    pub(super) const CAP: usize = 64;

    pub(super) fn new(r: SampleRef<'a>) -> Indexed<'a> {
        let mut ix = Indexed {
            r,
            n: Some(0),
            ids: [0; Indexed::CAP],
            vals: [ValueRef::U64(0); Indexed::CAP],
        };
        // `fields` already resolves duplicates (first position, last value).
        let mut n = 0;
        for (id, v) in r.fields() {
            if n == Indexed::CAP {
                ix.n = None;
                return ix;
            }
            ix.ids[n] = id;
            ix.vals[n] = v;
            n += 1;
        }
        ix.n = Some(n);
        ix
    }

    pub(super) fn get(&self, fid: u16) -> Option<ValueRef<'a>> {
        match self.n {
            Some(n) => self.ids[..n]
                .iter()
                .position(|&i| i == fid)
                .map(|k| self.vals[k]),
            None => self.r.get(fid),
        }
    }
}

impl View for Indexed<'_> {
    fn header(&self) -> Header {
        self.r.header
    }
    fn scalar(&self, fid: u16) -> Option<Value> {
        scalar_of(self.get(fid)?)
    }
    fn text(&self, fid: u16) -> Option<Cow<'_, str>> {
        self.get(fid)?.as_text()
    }
    fn pack(&self) -> Packed {
        match self.n {
            Some(n) if !kept_as_is(&self.r) => {
                pack_listed(&self.r.header, &self.ids[..n], &self.vals[..n])
            }
            _ => pack_ref(&self.r),
        }
    }
}

pub(super) fn text(s: &impl View, fid: u16) -> String {
    s.text(fid).map(|t| t.into_owned()).unwrap_or_default()
}

pub(super) fn num_u64(s: &impl View, fid: u16) -> u64 {
    match s.scalar(fid) {
        Some(Value::U64(v)) => v,
        Some(Value::I64(v)) => v.max(0) as u64,
        Some(Value::F64(v)) if v > 0.0 => v as u64,
        _ => 0,
    }
}

pub(super) fn num_f64(s: &impl View, fid: u16) -> f64 {
    s.f64(fid).unwrap_or(0.0)
}

/// Reads I32 arrays from a decoded datagram (GC and REQUEST views).
pub(super) trait Arrays {
    /// Calls `f(index, value)` for each element of I32 array `fid`.
    fn each_i32(&self, fid: u16, f: &mut dyn FnMut(usize, i32));
}

fn each_i32_ref(v: Option<ValueRef<'_>>, f: &mut dyn FnMut(usize, i32)) {
    if let Some(ValueRef::I32Array(b)) = v {
        for (i, c) in b.chunks_exact(4).enumerate() {
            f(i, i32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
    }
}

impl Arrays for Sample {
    fn each_i32(&self, fid: u16, f: &mut dyn FnMut(usize, i32)) {
        if let Some(Value::I32Array(v)) = self.get(fid) {
            for (i, c) in v.iter().enumerate() {
                f(i, *c);
            }
        }
    }
}

impl Arrays for SampleRef<'_> {
    fn each_i32(&self, fid: u16, f: &mut dyn FnMut(usize, i32)) {
        each_i32_ref(self.get(fid), f);
    }
}

impl Arrays for Indexed<'_> {
    fn each_i32(&self, fid: u16, f: &mut dyn FnMut(usize, i32)) {
        each_i32_ref(self.get(fid), f);
    }
}
