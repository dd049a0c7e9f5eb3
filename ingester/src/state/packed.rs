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

/// Packs a decoded sample.
pub fn pack(s: &Sample) -> Packed {
    let mut out = Vec::with_capacity(512);
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

impl Reader<'_> {
    fn u16(&mut self) -> u16 {
        let v = u16::from_le_bytes([self.b[self.o], self.b[self.o + 1]]);
        self.o += 2;
        v
    }
    fn u32(&mut self) -> u32 {
        let mut a = [0u8; 4];
        a.copy_from_slice(&self.b[self.o..self.o + 4]);
        self.o += 4;
        u32::from_le_bytes(a)
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
    let b = &p.0;
    let header: Header = wire::decode_header(b).expect("packed samples start with a valid header");
    let mut r = Reader {
        b,
        o: wire::HEADER_LEN,
    };
    let mut fields = Vec::with_capacity(64);
    while r.o < b.len() {
        let id = r.u16();
        let tag = b[r.o];
        r.o += 1;
        let v = match tag {
            0x01 => Value::U64(r.u64()),
            0x02 => Value::F64(f64::from_bits(r.u64())),
            0x03 => Value::I64(r.u64() as i64),
            0x04 => {
                let n = r.u16() as usize;
                let v = b[r.o..r.o + n].to_vec();
                r.o += n;
                Value::Bytes(v)
            }
            0x05 => {
                let n = r.u16() as usize;
                Value::I32Array((0..n).map(|_| r.u32() as i32).collect())
            }
            0x06 => {
                let n = r.u16() as usize;
                Value::F64Array((0..n).map(|_| f64::from_bits(r.u64())).collect())
            }
            SPARSE_I32 => {
                let n = r.u16() as usize;
                let nnz = r.u16() as usize;
                let mut a = vec![0i32; n];
                for _ in 0..nnz {
                    let i = r.u16() as usize;
                    a[i] = r.u32() as i32;
                }
                Value::I32Array(a)
            }
            SPARSE_F64 => {
                let n = r.u16() as usize;
                let nnz = r.u16() as usize;
                let mut a = vec![0f64; n];
                for _ in 0..nnz {
                    let i = r.u16() as usize;
                    a[i] = f64::from_bits(r.u64());
                }
                Value::F64Array(a)
            }
            other => unreachable!("packed tag {other:#x}"),
        };
        fields.push((id, v));
    }
    Sample { header, fields }
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
            if s.header.kind == wire::Kind::REQUEST {
                raw += d.len();
                packed += p.heap_bytes();
            }
        }
        assert!(packed * 2 < raw, "packed {packed} vs raw {raw}");
    }
}
