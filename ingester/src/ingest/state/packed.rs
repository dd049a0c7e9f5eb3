//! Compact storage of decoded samples.
//!
//! A REQUEST datagram is mostly histograms and per-slot arrays that are
//! mostly zeros; stored as-is, 600 samples of 1,000 processes would take
//! ~1.5 GB. We keep each sample as its wire bytes with arrays that are at
//! least half zeros rewritten in a private sparse form (`index: u16, value`
//! pairs). Nothing here is ever sent on the wire; [`unpack`] gives back
//! exactly the decoded sample. A datagram with no array and no repeated
//! field id (every GC event and snapshot) is already in that form and is
//! kept byte for byte, without a pass over its fields.

use std::sync::Arc;
use wire::{Header, Sample, SampleRef, Tag, Value, ValueRef};

const SPARSE_I32: u8 = 0x85;
const SPARSE_F64: u8 = 0x86;

/// A stored sample in the packed form: one allocation, shared (a snapshot
/// takes a reference, not a copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packed(Arc<[u8]>);

impl Packed {
    /// Bytes held (for memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len()
    }

    /// Asks the CPU to bring this sample's allocation (its reference counts
    /// and the allocator's header just before them) into the cache. Called
    /// on a sample just evicted from its ring, some evictions before it is
    /// dropped: dropping it at once stalls on a cache miss (the atomic
    /// decrement of a line nobody touched since the sample arrived).
    #[inline]
    pub(crate) fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // The counts sit 16 bytes before the data, the allocator's
            // chunk header 16 before them: one or two lines.
            let p = Arc::as_ptr(&self.0) as *const u8 as *const i8;
            // SAFETY: a prefetch is a hint: it never faults and reads or
            // writes nothing the program sees, whatever the address; SSE is
            // part of every x86_64 CPU.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_sub(32));
                _mm_prefetch::<_MM_HINT_T0>(p);
            }
        }
    }
}

/// A value as [`pack`] sees it, from either decoder.
#[derive(Clone, Copy)]
enum Val<'a> {
    /// U64, F64 or I64 with its 8 bytes as a `u64`.
    Scalar(Tag, u64),
    Bytes(&'a [u8]),
    /// I32Array or F64Array (the elements say which).
    Array(Elems<'a>),
}

/// Array elements: decoded, or their little-endian wire bytes.
#[derive(Clone, Copy)]
enum Elems<'a> {
    I32(&'a [i32]),
    F64(&'a [f64]),
    /// 4 bytes each (the decoder checked the length).
    LeI32(&'a [u8]),
    /// 8 bytes each.
    LeF64(&'a [u8]),
}

impl<'a> From<&'a Value> for Val<'a> {
    fn from(v: &'a Value) -> Val<'a> {
        match v {
            Value::U64(x) => Val::Scalar(Tag::U64, *x),
            Value::F64(x) => Val::Scalar(Tag::F64, x.to_bits()),
            Value::I64(x) => Val::Scalar(Tag::I64, *x as u64),
            Value::Bytes(b) => Val::Bytes(b),
            Value::I32Array(a) => Val::Array(Elems::I32(a)),
            Value::F64Array(a) => Val::Array(Elems::F64(a)),
        }
    }
}

impl<'a> From<ValueRef<'a>> for Val<'a> {
    fn from(v: ValueRef<'a>) -> Val<'a> {
        match v {
            ValueRef::U64(x) => Val::Scalar(Tag::U64, x),
            ValueRef::F64(x) => Val::Scalar(Tag::F64, x.to_bits()),
            ValueRef::I64(x) => Val::Scalar(Tag::I64, x as u64),
            ValueRef::Bytes(b) => Val::Bytes(b),
            ValueRef::I32Array(b) => Val::Array(Elems::LeI32(b)),
            ValueRef::F64Array(b) => Val::Array(Elems::LeF64(b)),
        }
    }
}

thread_local! {
    /// Where a sample is packed before it is copied into its exact-size
    /// allocation: one pass over the fields, and no growth of the
    /// allocation that is kept.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn pack_fields<'a>(header: &Header, fields: impl Iterator<Item = (u16, Val<'a>)>) -> Packed {
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        out.extend_from_slice(&header.to_bytes());
        for (id, v) in fields {
            out.extend_from_slice(&id.to_le_bytes());
            match v {
                Val::Scalar(tag, x) => {
                    out.push(tag as u8);
                    out.extend_from_slice(&x.to_le_bytes());
                }
                Val::Bytes(b) => {
                    out.push(Tag::Bytes as u8);
                    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                    out.extend_from_slice(b);
                }
                Val::Array(Elems::LeI32(b)) => array(out, Tag::I32Array, le::<4>(b)),
                Val::Array(Elems::LeF64(b)) => array(out, Tag::F64Array, le::<8>(b)),
                Val::Array(Elems::I32(a)) => {
                    array(out, Tag::I32Array, a.iter().map(|x| x.to_le_bytes()))
                }
                Val::Array(Elems::F64(a)) => array(
                    out,
                    Tag::F64Array,
                    a.iter().map(|x| x.to_bits().to_le_bytes()),
                ),
            }
        }
        Packed(Arc::from(&out[..]))
    })
}

/// Little-endian wire elements of `W` bytes.
fn le<const W: usize>(b: &[u8]) -> impl ExactSizeIterator<Item = [u8; W]> + Clone + '_ {
    b.chunks_exact(W)
        .map(|c| <[u8; W]>::try_from(c).unwrap_or([0; W]))
}

/// An array: sparse (`index: u16, element` for the elements whose bits are
/// not all zero) when at least half its elements are zero, else dense as
/// on the wire. Zero means all bits zero: -0.0 and NaN payloads are kept
/// bit-exact.
fn array<const W: usize>(
    out: &mut Vec<u8>,
    tag: Tag,
    elems: impl ExactSizeIterator<Item = [u8; W]> + Clone,
) {
    let n = elems.len();
    let nnz = elems.clone().filter(|e| *e != [0; W]).count();
    if nnz * 2 <= n {
        out.push(if tag == Tag::I32Array {
            SPARSE_I32
        } else {
            SPARSE_F64
        });
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&(nnz as u16).to_le_bytes());
        for (i, e) in elems.enumerate() {
            if e != [0; W] {
                out.extend_from_slice(&(i as u16).to_le_bytes());
                out.extend_from_slice(&e);
            }
        }
    } else {
        out.push(tag as u8);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        elems.for_each(|e| out.extend_from_slice(&e));
    }
}

/// Packs a decoded sample.
pub(crate) fn pack(s: &Sample) -> Packed {
    pack_fields(
        &s.header,
        s.fields.iter().map(|(id, v)| (*id, Val::from(v))),
    )
}

/// Packs a sample read in place ([`wire::decode_ref`]): no intermediate
/// copy of its fields, dense arrays copied as their wire bytes.
pub(crate) fn pack_ref(s: &SampleRef<'_>) -> Packed {
    if kept_as_is(s) {
        return Packed(Arc::from(s.bytes()));
    }
    pack_fields(&s.header, s.fields().map(|(id, v)| (id, Val::from(v))))
}

/// True when the datagram's own bytes are its packed form: no array to
/// rewrite and no repeated id to resolve.
pub(crate) fn kept_as_is(s: &SampleRef<'_>) -> bool {
    !s.has_arrays() && !s.has_duplicates()
}

/// As [`pack_ref`], from fields already listed in wire order (duplicates
/// resolved as [`SampleRef::fields`] does).
pub(crate) fn pack_listed(header: &Header, ids: &[u16], vals: &[ValueRef<'_>]) -> Packed {
    pack_fields(
        header,
        ids.iter().zip(vals).map(|(&id, &v)| (id, Val::from(v))),
    )
}

struct Reader<'a> {
    b: &'a [u8],
    o: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.o..self.o + n];
        self.o += n;
        s
    }
    fn u16(&mut self) -> u16 {
        let v = u16::from_le_bytes([self.b[self.o], self.b[self.o + 1]]);
        self.o += 2;
        v
    }
    fn u64(&mut self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b[self.o..self.o + 8]);
        self.o += 8;
        u64::from_le_bytes(a)
    }
}

/// Unpacks a stored sample. Only ever given what [`pack`] produced or a
/// datagram [`kept_as_is`] (the same layout), so the layout is trusted.
/// The JSON writer reads the packed form directly; this is the tests'
/// reference.
#[cfg(test)]
pub(crate) fn unpack(p: &Packed) -> Sample {
    let le_i32 = |c: &[u8]| i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    let le_f64 = |c: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&c[..8]);
        f64::from_bits(u64::from_le_bytes(a))
    };
    let fields = p
        .fields()
        .map(|(id, v)| {
            let v = match v {
                PackedValue::U64(x) => Value::U64(x),
                PackedValue::F64(x) => Value::F64(x),
                PackedValue::I64(x) => Value::I64(x),
                PackedValue::Bytes(b) => Value::Bytes(b.to_vec()),
                PackedValue::I32Dense(b) => {
                    Value::I32Array(b.chunks_exact(4).map(le_i32).collect())
                }
                PackedValue::F64Dense(b) => {
                    Value::F64Array(b.chunks_exact(8).map(le_f64).collect())
                }
                PackedValue::I32Sparse { len, pairs } => {
                    let mut a = vec![0i32; len];
                    for c in pairs.chunks_exact(6) {
                        a[u16::from_le_bytes([c[0], c[1]]) as usize] = le_i32(&c[2..]);
                    }
                    Value::I32Array(a)
                }
                PackedValue::F64Sparse { len, pairs } => {
                    let mut a = vec![0f64; len];
                    for c in pairs.chunks_exact(10) {
                        a[u16::from_le_bytes([c[0], c[1]]) as usize] = le_f64(&c[2..]);
                    }
                    Value::F64Array(a)
                }
            };
            (id, v)
        })
        .collect();
    Sample {
        header: p.header(),
        fields,
    }
}

/// One stored value, borrowed from the packed bytes (for writers that
/// serialise straight from the stored form without unpacking).
#[derive(Debug, Clone, Copy)]
pub(crate) enum PackedValue<'a> {
    /// U64 scalar.
    U64(u64),
    /// F64 scalar.
    F64(f64),
    /// I64 scalar.
    I64(i64),
    /// BYTES (raw, not validated).
    Bytes(&'a [u8]),
    /// I32 array, little-endian `i32`s.
    I32Dense(&'a [u8]),
    /// F64 array, little-endian `f64` bits.
    F64Dense(&'a [u8]),
    /// I32 array of `len` elements; `pairs` are `(u16 index, i32)` of the
    /// non-zero ones in increasing index order.
    I32Sparse {
        /// Element count.
        len: usize,
        /// 6-byte pairs.
        pairs: &'a [u8],
    },
    /// F64 array of `len` elements; `pairs` are `(u16 index, f64 bits)` of
    /// the elements that are not +0.0, in increasing index order.
    F64Sparse {
        /// Element count.
        len: usize,
        /// 10-byte pairs.
        pairs: &'a [u8],
    },
}

impl Packed {
    /// The header of the stored sample.
    pub(crate) fn header(&self) -> Header {
        wire::decode_header(&self.0).expect("packed samples start with a valid header")
    }

    /// The stored fields in wire order, borrowed.
    pub(crate) fn fields(&self) -> Fields<'_> {
        Fields {
            r: Reader {
                b: &self.0,
                o: wire::HEADER_LEN,
            },
        }
    }
}

/// Iterator over a packed sample's fields (see [`Packed::fields`]).
pub(crate) struct Fields<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u16, PackedValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let r = &mut self.r;
        let b = r.b;
        if r.o >= b.len() {
            return None;
        }
        let id = r.u16();
        let tag = b[r.o];
        r.o += 1;
        let v = match tag {
            0x01 => PackedValue::U64(r.u64()),
            0x02 => PackedValue::F64(f64::from_bits(r.u64())),
            0x03 => PackedValue::I64(r.u64() as i64),
            0x04 => {
                let n = r.u16() as usize;
                PackedValue::Bytes(r.take(n))
            }
            0x05 => {
                let n = r.u16() as usize;
                PackedValue::I32Dense(r.take(n * 4))
            }
            0x06 => {
                let n = r.u16() as usize;
                PackedValue::F64Dense(r.take(n * 8))
            }
            SPARSE_I32 => {
                let len = r.u16() as usize;
                let nnz = r.u16() as usize;
                PackedValue::I32Sparse {
                    len,
                    pairs: r.take(nnz * 6),
                }
            }
            SPARSE_F64 => {
                let len = r.u16() as usize;
                let nnz = r.u16() as usize;
                PackedValue::F64Sparse {
                    len,
                    pairs: r.take(nnz * 10),
                }
            }
            other => unreachable!("packed tag {other:#x}"),
        };
        Some((id, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored bytes themselves (the other tests compare the two
    /// packers with each other and round trips): empty, one-zero and
    /// dense arrays, -0.0 and a NaN payload kept, sparse pairs.
    #[test]
    fn packed_layout_is_pinned() {
        let h = Header::new(wire::Kind::REQUEST, 1, 2, 3.5);
        let s = Sample {
            header: h,
            fields: vec![
                (1, Value::I32Array(vec![])),
                (2, Value::I32Array(vec![0])),
                (3, Value::I32Array(vec![-1])),
                (4, Value::F64Array(vec![-0.0, 0.0])),
                (
                    5,
                    Value::F64Array(vec![f64::from_bits(0x7ff8_0000_0000_0001), 1.0, 0.0]),
                ),
                (6, Value::I32Array(vec![0, 7, 0])),
            ],
        };
        let mut want = h.to_bytes().to_vec();
        want.extend([1, 0, 0x85, 0, 0, 0, 0]);
        want.extend([2, 0, 0x85, 1, 0, 0, 0]);
        want.extend([3, 0, 0x05, 1, 0, 0xff, 0xff, 0xff, 0xff]);
        want.extend([4, 0, 0x86, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]);
        want.extend([
            5, 0, 0x06, 3, 0, 1, 0, 0, 0, 0, 0, 0xf8, 0x7f, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0,
            0, 0, 0, 0, 0,
        ]);
        want.extend([6, 0, 0x85, 3, 0, 1, 0, 1, 0, 7, 0, 0, 0]);
        let d = s.encode().unwrap();
        for p in [pack(&s), pack_ref(&wire::decode_ref(&d).unwrap())] {
            assert_eq!(&*p.0, &want[..]);
            assert_eq!(unpack(&p).encode().unwrap(), d);
        }
    }

    #[test]
    fn round_trips_corpus_and_saves_memory() {
        let bin = testkit::corpus_capture();
        let (mut raw, mut packed, mut as_is) = (0usize, 0usize, 0usize);
        for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
            let s = wire::decode(d).unwrap();
            let p = pack(&s);
            assert_eq!(unpack(&p), s);
            // The datagram's own bytes, when kept as is, are exactly what
            // packing field by field gives.
            let r = wire::decode_ref(d).unwrap();
            assert_eq!(pack_ref(&r), p);
            if kept_as_is(&r) {
                as_is += 1;
                assert_eq!(&p.0[..], d);
            }
            let gc = matches!(
                s.header.kind,
                wire::Kind::GC_EVENT | wire::Kind::GC_SNAPSHOT
            );
            assert!(!gc || kept_as_is(&r), "GC datagrams have no arrays");
            if s.header.kind == wire::Kind::REQUEST {
                raw += d.len();
                packed += p.heap_bytes();
            }
        }
        assert!(packed * 2 < raw, "packed {packed} vs raw {raw}");
        assert!(as_is > 11_000, "{as_is} of 11,888 kept as is");
    }

    #[test]
    fn packing_in_place_keeps_zero_signs_and_nan_bits() {
        let mut f = vec![0.0; 40];
        f[3] = -0.0;
        f[17] = 1e21;
        f[39] = f64::from_bits(0x7ff8_0000_dead_beef);
        let mut i = vec![0i32; 40];
        i[0] = -1;
        i[5] = i32::MIN;
        i[39] = i32::MAX;
        let dense_f: Vec<f64> = (0..10).map(|k| k as f64 - 4.5).collect();
        let dense_i: Vec<i32> = (0..10).map(|k| k - 3).collect();
        let s = Sample {
            header: Header::new(wire::Kind::REQUEST, 1, 2, 3.5),
            fields: vec![
                (100, Value::F64Array(f)),
                (101, Value::I32Array(i)),
                (102, Value::F64Array(dense_f)),
                (103, Value::I32Array(dense_i)),
                (104, Value::F64Array(vec![])),
                (5, Value::Bytes(b"\xffweb".to_vec())),
                (20, Value::I64(-7)),
                (21, Value::F64(-0.0)),
            ],
        };
        let d = s.encode().unwrap();
        let p = pack_ref(&wire::decode_ref(&d).unwrap());
        assert_eq!(p, pack(&s));
        assert_eq!(unpack(&p).encode().unwrap(), d);
    }
}
