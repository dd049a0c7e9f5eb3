//! Encoder into a caller-owned buffer: no heap allocation, never writes past
//! the buffer or past [`MAX_DATAGRAM`].

use crate::{Header, Tag, Value, HEADER_LEN, MAX_DATAGRAM};
use std::fmt;

/// Why a record could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The record does not fit in the buffer (or the 8192-byte cap).
    Overflow {
        /// Field id of the record that did not fit.
        field: u16,
    },
    /// A BYTES value or an array longer than 65 535 elements.
    TooLong {
        /// Field id of the record.
        field: u16,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Overflow { field } => {
                write!(f, "field {field} does not fit in one datagram")
            }
            EncodeError::TooLong { field } => {
                write!(f, "field {field} has more than 65535 elements")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Writes a header and TLV records into a byte buffer.
///
/// A record that does not fit is not written at all (the datagram stays
/// well-formed) and the call returns [`EncodeError::Overflow`].
pub struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
    cap: usize,
}

impl<'a> Encoder<'a> {
    /// Starts a datagram with `header`.
    ///
    /// # Panics
    /// If `buf` is shorter than the 24-byte header (a programming error, not
    /// an input error).
    pub fn new(buf: &'a mut [u8], header: &Header) -> Encoder<'a> {
        assert!(
            buf.len() >= HEADER_LEN,
            "encode buffer shorter than the header"
        );
        buf[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        let cap = buf.len().min(MAX_DATAGRAM);
        Encoder {
            buf,
            len: HEADER_LEN,
            cap,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Bytes still free before the cap.
    pub fn remaining(&self) -> usize {
        self.cap - self.len
    }

    /// Finishes; returns the datagram length.
    pub fn finish(self) -> usize {
        self.len
    }

    fn record(
        &mut self,
        id: u16,
        tag: Tag,
        count: Option<usize>,
        body_len: usize,
    ) -> Result<usize, EncodeError> {
        let head = 3 + if count.is_some() { 2 } else { 0 };
        if let Some(c) = count {
            if c > u16::MAX as usize {
                return Err(EncodeError::TooLong { field: id });
            }
        }
        if self.remaining() < head + body_len {
            return Err(EncodeError::Overflow { field: id });
        }
        let o = self.len;
        self.buf[o..o + 2].copy_from_slice(&id.to_le_bytes());
        self.buf[o + 2] = tag as u8;
        if let Some(c) = count {
            self.buf[o + 3..o + 5].copy_from_slice(&(c as u16).to_le_bytes());
        }
        self.len += head + body_len;
        Ok(o + head)
    }

    /// Reserves a variable-length record of `count` elements and
    /// `body_len` bytes and returns its body for the caller to fill (for
    /// values assembled in place, such as the joined metric names).
    pub(crate) fn reserve(
        &mut self,
        id: u16,
        tag: Tag,
        count: usize,
        body_len: usize,
    ) -> Result<&mut [u8], EncodeError> {
        let o = self.record(id, tag, Some(count), body_len)?;
        Ok(&mut self.buf[o..o + body_len])
    }

    /// Tag 0x01.
    pub fn u64(&mut self, id: u16, v: u64) -> Result<(), EncodeError> {
        let o = self.record(id, Tag::U64, None, 8)?;
        self.buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }

    /// Tag 0x02.
    pub fn f64(&mut self, id: u16, v: f64) -> Result<(), EncodeError> {
        let o = self.record(id, Tag::F64, None, 8)?;
        self.buf[o..o + 8].copy_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }

    /// Tag 0x03.
    pub fn i64(&mut self, id: u16, v: i64) -> Result<(), EncodeError> {
        let o = self.record(id, Tag::I64, None, 8)?;
        self.buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
        Ok(())
    }

    /// Tag 0x04.
    pub fn bytes(&mut self, id: u16, v: &[u8]) -> Result<(), EncodeError> {
        let o = self.record(id, Tag::Bytes, Some(v.len()), v.len())?;
        self.buf[o..o + v.len()].copy_from_slice(v);
        Ok(())
    }

    /// Tag 0x04, only when `v` is non-empty (the reporter's rule for
    /// optional strings).
    pub fn bytes_if_nonempty(&mut self, id: u16, v: &[u8]) -> Result<(), EncodeError> {
        if v.is_empty() {
            Ok(())
        } else {
            self.bytes(id, v)
        }
    }

    /// Tag 0x05.
    pub fn i32_array(&mut self, id: u16, v: &[i32]) -> Result<(), EncodeError> {
        let o = self.record(id, Tag::I32Array, Some(v.len()), v.len().saturating_mul(4))?;
        for (i, x) in v.iter().enumerate() {
            self.buf[o + 4 * i..o + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
        }
        Ok(())
    }

    /// Tag 0x06.
    pub fn f64_array(&mut self, id: u16, v: &[f64]) -> Result<(), EncodeError> {
        let o = self.record(id, Tag::F64Array, Some(v.len()), v.len().saturating_mul(8))?;
        for (i, x) in v.iter().enumerate() {
            self.buf[o + 8 * i..o + 8 * i + 8].copy_from_slice(&x.to_bits().to_le_bytes());
        }
        Ok(())
    }

    /// Any decoded value, with its own tag.
    pub fn value(&mut self, id: u16, v: &Value) -> Result<(), EncodeError> {
        match v {
            Value::U64(x) => self.u64(id, *x),
            Value::F64(x) => self.f64(id, *x),
            Value::I64(x) => self.i64(id, *x),
            Value::Bytes(x) => self.bytes(id, x),
            Value::I32Array(x) => self.i32_array(id, x),
            Value::F64Array(x) => self.f64_array(id, x),
        }
    }
}
