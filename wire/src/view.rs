//! Borrowed decoding: a datagram checked once and read in place.
//!
//! [`decode_ref`] validates a datagram exactly as [`decode`](crate::decode)
//! does (the same errors at the same offsets) but allocates nothing: the
//! returned [`SampleRef`] borrows the datagram and its fields are read from
//! the TLV records on demand, BYTES and arrays as slices of the datagram.
//! For consumers that only copy or inspect a sample (the ingester's packed
//! store) this saves a `Vec` per datagram plus one per variable-length value.

use crate::decode::{u16_at, u64_at};
use crate::{decode_header, DecodeError, Header, Sample, Tag, Value, HEADER_LEN};
use std::borrow::Cow;

/// One field value, borrowed from the datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// Tag 0x01.
    U64(u64),
    /// Tag 0x02.
    F64(f64),
    /// Tag 0x03.
    I64(i64),
    /// Tag 0x04: raw bytes.
    Bytes(&'a [u8]),
    /// Tag 0x05: the elements' bytes, 4 little-endian bytes each.
    I32Array(&'a [u8]),
    /// Tag 0x06: the elements' bytes, 8 little-endian bytes (IEEE-754
    /// bits) each.
    F64Array(&'a [u8]),
}

impl<'a> ValueRef<'a> {
    /// The tag this value is written with.
    pub fn tag(&self) -> Tag {
        match self {
            ValueRef::U64(_) => Tag::U64,
            ValueRef::F64(_) => Tag::F64,
            ValueRef::I64(_) => Tag::I64,
            ValueRef::Bytes(_) => Tag::Bytes,
            ValueRef::I32Array(_) => Tag::I32Array,
            ValueRef::F64Array(_) => Tag::F64Array,
        }
    }

    /// The owned value (what [`decode`](crate::decode) gives).
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::U64(v) => Value::U64(v),
            ValueRef::F64(v) => Value::F64(v),
            ValueRef::I64(v) => Value::I64(v),
            ValueRef::Bytes(b) => Value::Bytes(b.to_vec()),
            ValueRef::I32Array(b) => Value::I32Array(
                b.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            ValueRef::F64Array(b) => Value::F64Array(
                b.chunks_exact(8)
                    .map(|c| f64::from_bits(u64_at(c, 0)))
                    .collect(),
            ),
        }
    }

    /// The value as a float, for any numeric scalar (as [`Value::as_f64`]).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::U64(v) => Some(v as f64),
            ValueRef::F64(v) => Some(v),
            ValueRef::I64(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The value as an unsigned integer (as [`Value::as_u64`]).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            ValueRef::U64(v) => Some(v),
            ValueRef::I64(v) if v >= 0 => Some(v as u64),
            ValueRef::F64(v) if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as bytes, for BYTES.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            ValueRef::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// BYTES as text, invalid UTF-8 replaced (as [`Value::as_text`]).
    pub fn as_text(&self) -> Option<Cow<'a, str>> {
        self.as_bytes().map(String::from_utf8_lossy)
    }
}

/// A validated datagram, read in place (see [`decode_ref`]).
///
/// [`fields`](SampleRef::fields) yields what [`decode`](crate::decode) puts
/// in [`Sample::fields`]: wire order, a duplicated id at the position of its
/// first occurrence with the value of its last.
#[derive(Clone, Copy, Debug)]
pub struct SampleRef<'a> {
    /// The fixed header.
    pub header: Header,
    buf: &'a [u8],
    duplicates: bool,
    arrays: bool,
}

/// Reads the TLV record at `off` of a datagram [`decode_ref`] validated:
/// `(id, value, offset of the next record)`.
fn record(buf: &[u8], off: usize) -> (u16, ValueRef<'_>, usize) {
    let id = u16_at(buf, off);
    let tag = buf[off + 2];
    let off = off + 3;
    match tag {
        0x01 => (id, ValueRef::U64(u64_at(buf, off)), off + 8),
        0x02 => (id, ValueRef::F64(f64::from_bits(u64_at(buf, off))), off + 8),
        0x03 => (id, ValueRef::I64(u64_at(buf, off) as i64), off + 8),
        _ => {
            let count = u16_at(buf, off) as usize;
            let start = off + 2;
            let width = match tag {
                0x04 => 1,
                0x05 => 4,
                _ => 8,
            };
            let end = start + count * width;
            let body = &buf[start..end];
            let v = match tag {
                0x04 => ValueRef::Bytes(body),
                0x05 => ValueRef::I32Array(body),
                _ => ValueRef::F64Array(body),
            };
            (id, v, end)
        }
    }
}

/// Validates one datagram without allocating; the same checks, in the same
/// order, and so the same errors as [`decode`](crate::decode).
pub fn decode_ref(buf: &[u8]) -> Result<SampleRef<'_>, DecodeError> {
    let header = decode_header(buf)?;
    let mut seen = [0u64; 8];
    let mut duplicates = false;
    let mut arrays = false;
    let mut off = HEADER_LEN;
    while off < buf.len() {
        if buf.len() - off < 3 {
            return Err(DecodeError::TruncatedTlvHeader { offset: off });
        }
        let id = u16_at(buf, off);
        let tag_byte = buf[off + 2];
        let tag = Tag::from_u8(tag_byte).ok_or(DecodeError::UnknownTag {
            tag: tag_byte,
            offset: off + 2,
        })?;
        let start = off;
        off += 3;
        let need = |off: usize, needed: usize| -> Result<(), DecodeError> {
            let available = buf.len() - off;
            if available < needed {
                Err(DecodeError::TruncatedValue {
                    field: id,
                    offset: off,
                    needed,
                    available,
                })
            } else {
                Ok(())
            }
        };
        match tag {
            Tag::U64 | Tag::F64 | Tag::I64 => {
                need(off, 8)?;
                off += 8;
            }
            Tag::Bytes | Tag::I32Array | Tag::F64Array => {
                need(off, 2)?;
                let count = u16_at(buf, off) as usize;
                off += 2;
                let width = match tag {
                    Tag::Bytes => 1,
                    Tag::I32Array => 4,
                    _ => 8,
                };
                arrays |= tag != Tag::Bytes;
                need(off, count * width)?;
                off += count * width;
            }
        }
        if !duplicates {
            duplicates = if (id as usize) < 512 {
                let (w, b) = (id as usize / 64, 1u64 << (id % 64));
                let dup = seen[w] & b != 0;
                seen[w] |= b;
                dup
            } else {
                // Ids beyond the registry are rare: rescan the records so far.
                Records {
                    buf: &buf[..start],
                    off: HEADER_LEN,
                }
                .any(|(i, _)| i == id)
            };
        }
    }
    Ok(SampleRef {
        header,
        buf,
        duplicates,
        arrays,
    })
}

/// Every TLV record of a validated datagram, duplicates included.
#[derive(Clone)]
struct Records<'a> {
    buf: &'a [u8],
    off: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = (u16, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.buf.len() {
            return None;
        }
        let (id, v, next) = record(self.buf, self.off);
        self.off = next;
        Some((id, v))
    }
}

impl<'a> SampleRef<'a> {
    /// True when some field id occurs more than once (then
    /// [`fields`](SampleRef::fields) rescans the datagram per field).
    pub fn has_duplicates(&self) -> bool {
        self.duplicates
    }

    /// True when some TLV record (a repeated id's included) is an I32 or
    /// F64 array.
    pub fn has_arrays(&self) -> bool {
        self.arrays
    }

    /// The whole datagram, as received.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The datagram's length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when the datagram has no fields (only the header).
    pub fn is_empty(&self) -> bool {
        self.buf.len() == HEADER_LEN
    }

    fn records(&self) -> Records<'a> {
        Records {
            buf: self.buf,
            off: HEADER_LEN,
        }
    }

    /// The fields in wire order, as [`Sample::fields`] of
    /// [`decode`](crate::decode).
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            records: self.records(),
            duplicates: self.duplicates,
            buf: self.buf,
        }
    }

    /// The value of field `id`, if present (the last occurrence).
    pub fn get(&self, id: u16) -> Option<ValueRef<'a>> {
        if self.duplicates {
            self.records().filter(|(i, _)| *i == id).last()
        } else {
            self.records().find(|(i, _)| *i == id)
        }
        .map(|(_, v)| v)
    }

    /// Field `id` as a float (any numeric scalar).
    pub fn f64(&self, id: u16) -> Option<f64> {
        self.get(id)?.as_f64()
    }

    /// Field `id` as an unsigned integer.
    pub fn u64(&self, id: u16) -> Option<u64> {
        self.get(id)?.as_u64()
    }

    /// Field `id` as text (BYTES, UTF-8 with replacement).
    pub fn text(&self, id: u16) -> Option<Cow<'a, str>> {
        self.get(id)?.as_text()
    }

    /// The owned sample, equal to what [`decode`](crate::decode) gives.
    pub fn to_sample(&self) -> Sample {
        Sample {
            header: self.header,
            fields: self.fields().map(|(id, v)| (id, v.to_value())).collect(),
        }
    }
}

/// Iterator over a [`SampleRef`]'s fields (see [`SampleRef::fields`]).
#[derive(Clone)]
pub struct Fields<'a> {
    records: Records<'a>,
    duplicates: bool,
    buf: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (u16, ValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if !self.duplicates {
            return self.records.next();
        }
        loop {
            let start = self.records.off;
            let (id, v) = self.records.next()?;
            let mut before = Records {
                buf: &self.buf[..start],
                off: HEADER_LEN,
            };
            if before.any(|(i, _)| i == id) {
                continue; // not the first occurrence: already yielded
            }
            let last = Records {
                buf: self.buf,
                off: self.records.off,
            }
            .filter(|(i, _)| *i == id)
            .last()
            .map_or(v, |(_, v)| v);
            return Some((id, last));
        }
    }
}
