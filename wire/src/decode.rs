//! Total decoder: every input gives a sample or a typed error.

use crate::{Header, Kind, Sample, Tag, Value, HEADER_LEN, MAGIC};
use std::fmt;

/// Why a datagram could not be decoded. Offsets are byte offsets in the
/// datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the 24-byte header.
    TooShort {
        /// Datagram length.
        len: usize,
    },
    /// The first four bytes are not `WSGI`.
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// One or two bytes left where a TLV header (3 bytes) should start.
    TruncatedTlvHeader {
        /// Offset of the partial TLV header.
        offset: usize,
    },
    /// Not one of the six defined type tags; the record length is unknown,
    /// so the rest of the datagram cannot be read.
    UnknownTag {
        /// The tag byte.
        tag: u8,
        /// Offset of the tag byte.
        offset: usize,
    },
    /// A value (or an array/BYTES count) runs past the end of the datagram.
    TruncatedValue {
        /// Field id of the record.
        field: u16,
        /// Offset where the value starts.
        offset: usize,
        /// Bytes the value needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooShort { len } => write!(f, "datagram too short: {len} bytes"),
            DecodeError::BadMagic { found } => write!(f, "bad magic {found:02x?}"),
            DecodeError::TruncatedTlvHeader { offset } => {
                write!(f, "truncated TLV header at offset {offset}")
            }
            DecodeError::UnknownTag { tag, offset } => {
                write!(f, "unknown type tag 0x{tag:02x} at offset {offset}")
            }
            DecodeError::TruncatedValue {
                field,
                offset,
                needed,
                available,
            } => write!(
                f,
                "value of field {field} at offset {offset} needs {needed} bytes, {available} left"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Decodes only the 24-byte header (for routing without a full decode).
pub fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { len: buf.len() });
    }
    if buf[0..4] != MAGIC {
        return Err(DecodeError::BadMagic {
            found: [buf[0], buf[1], buf[2], buf[3]],
        });
    }
    Ok(Header {
        version: buf[4],
        kind: Kind(buf[5]),
        flags: u16_at(buf, 6),
        pid: u32_at(buf, 8),
        seq: u32_at(buf, 12),
        stamp: f64::from_bits(u64_at(buf, 16)),
    })
}

/// Decodes one datagram.
///
/// Differences from the reference decoder, all on malformed input: a BYTES
/// value whose count runs past the end is an error (the reference silently
/// truncates it), and every overrun is a [`DecodeError`] rather than a
/// language exception.
pub fn decode(buf: &[u8]) -> Result<Sample, DecodeError> {
    let header = decode_header(buf)?;
    let mut fields: Vec<(u16, Value)> = Vec::with_capacity(64);
    let mut seen = [0u64; 8];
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
        let value = match tag {
            Tag::U64 | Tag::F64 | Tag::I64 => {
                need(off, 8)?;
                let raw = u64_at(buf, off);
                off += 8;
                match tag {
                    Tag::U64 => Value::U64(raw),
                    Tag::F64 => Value::F64(f64::from_bits(raw)),
                    _ => Value::I64(raw as i64),
                }
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
                need(off, count * width)?;
                let body = &buf[off..off + count * width];
                off += count * width;
                match tag {
                    Tag::Bytes => Value::Bytes(body.to_vec()),
                    Tag::I32Array => Value::I32Array(
                        body.chunks_exact(4)
                            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect(),
                    ),
                    _ => Value::F64Array(
                        body.chunks_exact(8)
                            .map(|c| f64::from_bits(u64_at(c, 0)))
                            .collect(),
                    ),
                }
            }
        };
        // Duplicates are rare: a bitset of the ids below 512 (every
        // registered id) avoids rescanning the fields for each new one.
        let seen_before = if (id as usize) < 512 {
            let (w, b) = (id as usize / 64, 1u64 << (id % 64));
            let dup = seen[w] & b != 0;
            seen[w] |= b;
            dup
        } else {
            fields.iter().any(|(i, _)| *i == id)
        };
        match seen_before
            .then(|| fields.iter_mut().find(|(i, _)| *i == id))
            .flatten()
        {
            Some(slot) => slot.1 = value,
            None => fields.push((id, value)),
        }
    }
    Ok(Sample { header, fields })
}
