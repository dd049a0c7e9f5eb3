//! Total decoder: every input gives a sample or a typed error.

use crate::{Header, Kind, Sample, HEADER_LEN, MAGIC};
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
    // One validation for both paths: the owned sample is the borrowed one
    // copied out.
    crate::decode_ref(buf).map(|r| r.to_sample())
}
