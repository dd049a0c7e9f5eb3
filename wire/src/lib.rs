//! mod_wsgi telemetry wire format, version 1.
//!
//! One datagram = a 24-byte little-endian header followed by TLV records
//! (`field id: u16`, `type tag: u8`, `[count: u16]`, value). This crate is the
//! single definition of that format for both ends of the pipeline: the Apache
//! module encodes with [`Encoder`] (into a caller-owned buffer, no heap
//! allocation) and the emission-order helpers in [`emit`]; the ingester
//! decodes with [`decode`], or reads in place with [`decode_ref`].
//!
//! The format is byte-compatible with the mod_wsgi 6.x built-in reporter and
//! the mod_wsgi-telemetry 1.1.0 decoder. This crate does no I/O and has no
//! dependencies. Decoding is total: any byte string yields a [`Sample`] or a
//! [`DecodeError`], never a panic.
//!
//! Files, in the order a datagram is made and read: `registry` (every
//! field id with its name and type), `emit` (which fields each kind
//! carries, in which order), `encode` (the [`Encoder`]), `truncate`
//! (slow-request strings cut as mod_wsgi 6.x cuts them), `histogram` (the
//! latency buckets), `app` (kind 10); then `decode` (owned [`Sample`]s)
//! and `view` (in-place [`SampleRef`]s); `capture` reads and writes the
//! capture files that `replay`, the tests and the benchmarks use.
//!
//! One extension to the reference registry: field 19,
//! `reporter_dropped_datagrams` (U64), carried on REQUEST datagrams by this
//! project's reporter, counts the datagrams the process could not send since
//! it started (socket absent, full or refusing). Older decoders show it as
//! `id19` and otherwise ignore it.
//!
//! A second extension: kind 10, `app_metrics` (fields 400-407), carries the
//! application's own counters, gauges and distributions; see [`app`] and
//! docs/wire.md. mod_wsgi 6.x never sends it; the reference ingester files
//! it with the periodic samples, which is why the module sends it only when
//! asked to (docs/app-metrics.md).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod capture;
mod decode;
pub mod emit;
mod encode;
pub mod histogram;
mod registry;
mod truncate;
mod view;

pub use decode::{decode, decode_header, DecodeError};
pub use encode::{EncodeError, Encoder};
pub use registry::{field_def, field_def_by_name, field_id, field_name, id, FieldDef, FIELDS};
pub use truncate::{truncate_into, truncated_len, SlowStringCap};
pub use view::{decode_ref, Fields, SampleRef, ValueRef};

/// The four magic bytes that start every datagram.
pub const MAGIC: [u8; 4] = *b"WSGI";
/// The wire version this crate writes.
pub const VERSION: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 24;
/// Hard cap on one datagram, as the 6.x reporter's encode buffer.
pub const MAX_DATAGRAM: usize = 8192;
/// Receive buffer size used by the reference ingester: the largest
/// datagram a receiver takes.
pub const RECV_BUFFER: usize = 65536;
/// What a receiver should read into: one byte more than [`RECV_BUFFER`],
/// so that a larger datagram, which the buffer cuts (the kernel drops the
/// rest), arrives one byte too long and is refused (see
/// [`oversize_error`]) instead of being read as a shorter one, which can
/// decode when the cut falls between two fields.
pub const RECV_CAPACITY: usize = RECV_BUFFER + 1;

/// `Some(message)` when a received datagram of `len` bytes is larger than
/// [`RECV_BUFFER`] and must be counted as undecodable.
pub fn oversize_error(len: usize) -> Option<String> {
    (len > RECV_BUFFER).then(|| {
        format!("datagram larger than the {RECV_BUFFER}-byte receive buffer (cut; refused)")
    })
}
/// Number of worker slots the per-slot arrays (110–114) cover at most.
pub const MAX_SLOTS: usize = 128;

/// TLV type tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tag {
    /// 8-byte unsigned little-endian.
    U64 = 0x01,
    /// 8-byte IEEE-754 binary64 little-endian.
    F64 = 0x02,
    /// 8-byte two's-complement little-endian.
    I64 = 0x03,
    /// `u16` byte count, then raw bytes.
    Bytes = 0x04,
    /// `u16` element count, then 4-byte signed little-endian elements.
    I32Array = 0x05,
    /// `u16` element count, then 8-byte IEEE-754 little-endian elements.
    F64Array = 0x06,
}

impl Tag {
    /// The tag for a raw byte, if it is one of the six defined tags.
    pub fn from_u8(b: u8) -> Option<Tag> {
        Some(match b {
            0x01 => Tag::U64,
            0x02 => Tag::F64,
            0x03 => Tag::I64,
            0x04 => Tag::Bytes,
            0x05 => Tag::I32Array,
            0x06 => Tag::F64Array,
            _ => return None,
        })
    }
}

/// Datagram kind (header byte 5). Unknown codes are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(pub u8);

impl Kind {
    /// Reserved, never emitted by the 6.x reporter.
    pub const PROCESS: Kind = Kind(1);
    /// The periodic per-process tick.
    pub const REQUEST: Kind = Kind(2);
    /// Reserved, never emitted by the 6.x reporter.
    pub const SERVER: Kind = Kind(3);
    /// One slow-request record (active or completed).
    pub const SLOW_REQUEST: Kind = Kind(4);
    /// Reporter started in a process.
    pub const PROCESS_STARTED: Kind = Kind(5);
    /// The process decided to stop.
    pub const PROCESS_STOPPING: Kind = Kind(6);
    /// The process is exiting.
    pub const PROCESS_STOPPED: Kind = Kind(7);
    /// Python GC state of one interpreter, once per tick.
    pub const GC_SNAPSHOT: Kind = Kind(8);
    /// One Python GC collection pass.
    pub const GC_EVENT: Kind = Kind(9);
    /// The application's own metrics (`incr`/`set`/`record`), this
    /// project's extension (see [`app`]); mod_wsgi 6.x never sends it.
    pub const APP_METRICS: Kind = Kind(10);

    /// The reference decoder's name for this kind (`kind<N>` when unknown);
    /// kind 10 is this project's `app_metrics` (the reference calls it
    /// `kind10`).
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow::Borrowed;
        match self.0 {
            1 => Borrowed("process_metrics"),
            2 => Borrowed("request_metrics"),
            3 => Borrowed("server_metrics"),
            4 => Borrowed("slow_request"),
            5 => Borrowed("process_started"),
            6 => Borrowed("process_stopping"),
            7 => Borrowed("process_stopped"),
            8 => Borrowed("gc_snapshot"),
            9 => Borrowed("gc_event"),
            10 => Borrowed("app_metrics"),
            n => std::borrow::Cow::Owned(format!("kind{n}")),
        }
    }

    /// The kind for a decoder name (`kind<N>` accepted).
    pub fn from_name(name: &str) -> Option<Kind> {
        (1..=10u8)
            .map(Kind)
            .find(|k| k.name() == name)
            .or_else(|| name.strip_prefix("kind")?.parse().ok().map(Kind))
    }
}

/// The fixed 24-byte header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    /// Version byte (1; not checked on decode, as the reference).
    pub version: u8,
    /// Datagram kind.
    pub kind: Kind,
    /// Reserved flags (0; not checked on decode).
    pub flags: u16,
    /// OS pid of the emitting process.
    pub pid: u32,
    /// Per-process sequence number shared by all kinds.
    pub seq: u32,
    /// Seconds since the Unix epoch.
    pub stamp: f64,
}

impl Header {
    /// A version-1 header with zero flags.
    pub fn new(kind: Kind, pid: u32, seq: u32, stamp: f64) -> Header {
        Header {
            version: VERSION,
            kind,
            flags: 0,
            pid,
            seq,
            stamp,
        }
    }

    /// The 24 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = self.version;
        b[5] = self.kind.0;
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..12].copy_from_slice(&self.pid.to_le_bytes());
        b[12..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..24].copy_from_slice(&self.stamp.to_bits().to_le_bytes());
        b
    }
}

/// A decoded field value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Tag 0x01.
    U64(u64),
    /// Tag 0x02.
    F64(f64),
    /// Tag 0x03.
    I64(i64),
    /// Tag 0x04: raw bytes, no declared encoding.
    Bytes(Vec<u8>),
    /// Tag 0x05.
    I32Array(Vec<i32>),
    /// Tag 0x06.
    F64Array(Vec<f64>),
}

impl Value {
    /// The tag this value is written with.
    pub fn tag(&self) -> Tag {
        match self {
            Value::U64(_) => Tag::U64,
            Value::F64(_) => Tag::F64,
            Value::I64(_) => Tag::I64,
            Value::Bytes(_) => Tag::Bytes,
            Value::I32Array(_) => Tag::I32Array,
            Value::F64Array(_) => Tag::F64Array,
        }
    }

    /// The value as a float, for any numeric scalar.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U64(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            Value::I64(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The value as an unsigned integer: U64, non-negative I64, or a
    /// non-negative whole F64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U64(v) => Some(v),
            Value::I64(v) if v >= 0 => Some(v as u64),
            Value::F64(v) if v >= 0.0 && v.fract() == 0.0 && v < 1.8e19 => Some(v as u64),
            _ => None,
        }
    }

    /// The value as bytes, for BYTES.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// BYTES as text, invalid UTF-8 replaced (as the reference ingester does).
    pub fn as_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.as_bytes().map(String::from_utf8_lossy)
    }
}

/// A decoded datagram: its header and its fields in wire order.
///
/// A duplicated field id keeps the position of its first occurrence and the
/// value of its last (the reference decoder fills a Python dict).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The fixed header.
    pub header: Header,
    /// `(field id, value)` in wire order.
    pub fields: Vec<(u16, Value)>,
}

impl Sample {
    /// The value of field `id`, if present.
    pub fn get(&self, id: u16) -> Option<&Value> {
        self.fields.iter().find(|(i, _)| *i == id).map(|(_, v)| v)
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
    pub fn text(&self, id: u16) -> Option<std::borrow::Cow<'_, str>> {
        self.get(id)?.as_text()
    }

    /// Encodes header and fields in order. Fails only when the result would
    /// exceed [`MAX_DATAGRAM`] or a variable-length value exceeds 65 535
    /// elements.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut enc = Encoder::new(&mut buf, &self.header);
        for (id, v) in &self.fields {
            enc.value(*id, v)?;
        }
        let n = enc.finish();
        buf.truncate(n);
        Ok(buf)
    }
}
