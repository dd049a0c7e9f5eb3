//! Compact storage of decoded samples.
//!
//! A REQUEST datagram is mostly histograms and per-slot arrays that are
//! mostly zeros; stored as-is, 600 samples of 1,000 processes would take
//! ~1.5 GB. We keep each sample as its wire bytes with arrays that are at
//! least half zeros rewritten in a private sparse form (`index: u16, value`
//! pairs). Nothing here is ever sent on the wire; [`unpack`] gives back
//! exactly the decoded sample.

use wire::{Header, Sample, Tag, Value};

const SPARSE_I32: u8 = 0x85;
const SPARSE_F64: u8 = 0x86;

/// A stored sample (`Box<[u8]>` in the packed form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

impl Packed {
    /// Bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// Bytes [`pack`] writes for a sample (so it allocates once, exactly).
fn packed_len(s: &Sample) -> usize {
    let sparse = |n: usize, nnz: usize, w: usize| {
        if nnz * 2 <= n {
            4 + nnz * (2 + w)
        } else {
            2 + n * w
        }
    };
    wire::HEADER_LEN
        + s.fields
            .iter()
            .map(|(_, v)| {
                3 + match v {
                    Value::U64(_) | Value::F64(_) | Value::I64(_) => 8,
                    Value::Bytes(b) => 2 + b.len(),
                    Value::I32Array(a) => sparse(a.len(), a.iter().filter(|&&x| x != 0).count(), 4),
                    Value::F64Array(a) => {
                        sparse(a.len(), a.iter().filter(|x| x.to_bits() != 0).count(), 8)
                    }
                }
            })
            .sum::<usize>()
}

/// Packs a decoded sample.
pub fn pack(s: &Sample) -> Packed {
    let mut out = Vec::with_capacity(packed_len(s));
    out.extend_from_slice(&s.header.to_bytes());
    for (id, v) in &s.fields {
        out.extend_from_slice(&id.to_le_bytes());
        match v {
            Value::U64(x) => {
                out.push(Tag::U64 as u8);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::F64(x) => {
                out.push(Tag::F64 as u8);
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            Value::I64(x) => {
                out.push(Tag::I64 as u8);
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Bytes(b) => {
                out.push(Tag::Bytes as u8);
                out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                out.extend_from_slice(b);
            }
            Value::I32Array(a) => {
                let nnz = a.iter().filter(|&&x| x != 0).count();
                if nnz * 2 <= a.len() {
                    out.push(SPARSE_I32);
                    out.extend_from_slice(&(a.len() as u16).to_le_bytes());
                    out.extend_from_slice(&(nnz as u16).to_le_bytes());
                    for (i, x) in a.iter().enumerate().filter(|(_, &x)| x != 0) {
                        out.extend_from_slice(&(i as u16).to_le_bytes());
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                } else {
                    out.push(Tag::I32Array as u8);
                    out.extend_from_slice(&(a.len() as u16).to_le_bytes());
                    a.iter()
                        .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                }
            }
            Value::F64Array(a) => {
                // +0.0 only: -0.0 and NaN payloads are kept bit-exact.
                let nnz = a.iter().filter(|x| x.to_bits() != 0).count();
                if nnz * 2 <= a.len() {
                    out.push(SPARSE_F64);
                    out.extend_from_slice(&(a.len() as u16).to_le_bytes());
                    out.extend_from_slice(&(nnz as u16).to_le_bytes());
                    for (i, x) in a.iter().enumerate().filter(|(_, x)| x.to_bits() != 0) {
                        out.extend_from_slice(&(i as u16).to_le_bytes());
                        out.extend_from_slice(&x.to_bits().to_le_bytes());
                    }
                } else {
                    out.push(Tag::F64Array as u8);
                    out.extend_from_slice(&(a.len() as u16).to_le_bytes());
                    a.iter()
                        .for_each(|x| out.extend_from_slice(&x.to_bits().to_le_bytes()));
                }
            }
        }
    }
    Packed(out.into_boxed_slice())
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

/// Unpacks a stored sample. Only ever given what [`pack`] produced, so the
/// layout is trusted.
pub fn unpack(p: &Packed) -> Sample {
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
pub enum PackedValue<'a> {
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
    pub fn header(&self) -> Header {
        wire::decode_header(&self.0).expect("packed samples start with a valid header")
    }

    /// The stored fields in wire order, borrowed.
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            r: Reader {
                b: &self.0,
                o: wire::HEADER_LEN,
            },
        }
    }
}

/// Iterator over a packed sample's fields (see [`Packed::fields`]).
pub struct Fields<'a> {
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

    #[test]
    fn round_trips_corpus_and_saves_memory() {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
        let dir = std::env::var_os("TELEMETRY_CORPUS_DIR")
            .map(Into::into)
            .unwrap_or(dir);
        let bin = std::fs::read(dir.join("anchor-6.1.1-mixed.bin")).expect("corpus");
        let (mut raw, mut packed) = (0usize, 0usize);
        for d in wire::capture::records(&bin).map(|r| r.unwrap()) {
            let s = wire::decode(d).unwrap();
            let p = pack(&s);
            assert_eq!(unpack(&p), s);
            assert_eq!(p.heap_bytes(), packed_len(&s));
            if s.header.kind == wire::Kind::REQUEST {
                raw += d.len();
                packed += p.heap_bytes();
            }
        }
        assert!(packed * 2 < raw, "packed {packed} vs raw {raw}");
    }
}
