//! Application metrics: kind 10 (`app_metrics`), this project's extension.
//!
//! A WSGI application counts its own events (`incr`), reports levels
//! (`set`) and records durations (`record`); the module keeps one table per
//! process and sends, once per tick, the names that changed. Everything a
//! datagram says is a **total since the process started** (a counter's sum
//! of increments, a distribution's count, sum and bucket counts) or a
//! current level (a gauge), never a per-tick delta: a lost datagram is made
//! good by the next one, an ingester that starts late still sees whole
//! figures, and a process that restarts comes back under a new pid starting
//! from zero, so the ingester can keep group sums monotonic by retiring the
//! old pid's last totals.
//!
//! The layout is columnar, one field per column, so every field id occurs
//! once per datagram and every v1 decoder (ours, the reference's, `dump`)
//! reads it whole:
//!
//! | id  | name | type | content |
//! |-----|------|------|---------|
//! | 5   | `hostname` | BYTES | omitted when empty |
//! | 6   | `process_group` | BYTES | omitted when empty (embedded mode) |
//! | 400 | `app_metric_names` | BYTES | the n names, joined by `\n` |
//! | 401 | `app_metric_types` | BYTES | n bytes: `c` counter, `g` gauge, `d` distribution |
//! | 402 | `app_metric_values` | F64 array (n) | counter total, gauge level, distribution sum |
//! | 403 | `app_metric_counts` | F64 array (d) | per distribution: values recorded |
//! | 404 | `app_metric_mins` | F64 array (d) | per distribution: smallest value |
//! | 405 | `app_metric_maxes` | F64 array (d) | per distribution: largest value |
//! | 406 | `app_metric_buckets` | I32 array | per distribution: `k`, then `k` pairs (bucket index, count mod 2^32) |
//! | 407 | `app_metric_dropped_calls` | U64 | calls refused since start because the name table was full |
//!
//! `d` is the number of `d` entries in 401; 403–406 are present only when
//! `d > 0`, in the order of those entries. Buckets are the 65 latency
//! buckets of [`crate::histogram`] (values in seconds), only the non-empty
//! ones, by rising index; counts are sent modulo 2^32 (as the bits of an
//! `i32`), so a receiver takes the difference from the previous datagram
//! of the same pid modulo 2^32 and keeps its own 64-bit totals.

use crate::emit::{host_and_group, CUT_HOSTNAME, CUT_PROCESS_GROUP};
use crate::histogram::BUCKETS;
use crate::registry::id;
use crate::{
    EncodeError, Encoder, Header, Kind, SampleRef, Tag, ValueRef, HEADER_LEN, MAX_DATAGRAM,
};
use std::fmt;

/// Longest metric name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// What joins the names in field 400 (never part of a valid name).
pub const NAME_SEPARATOR: u8 = b'\n';
/// The placeholder a name may carry once: derived statistics replace it
/// (`latency.{0}` gives `latency.p99`) instead of being appended to the
/// name with a dot.
pub const PLACEHOLDER: &[u8] = b"{0}";

/// The three kinds of application metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MetricType {
    /// `incr`: a running total of non-negative increments.
    Counter = b'c',
    /// `set`: the last level set.
    Gauge = b'g',
    /// `record`: durations in seconds, as a histogram with count, sum,
    /// min and max.
    Distribution = b'd',
}

impl MetricType {
    /// The type for a byte of field 401.
    pub fn from_u8(b: u8) -> Option<MetricType> {
        match b {
            b'c' => Some(MetricType::Counter),
            b'g' => Some(MetricType::Gauge),
            b'd' => Some(MetricType::Distribution),
            _ => None,
        }
    }

    /// `counter`, `gauge` or `distribution`.
    pub fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Distribution => "distribution",
        }
    }
}

/// Why a metric name is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// The empty name.
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A byte outside `A-Z a-z 0-9 _ . : / -` (and not part of `{0}`).
    BadByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// `{0}` more than once.
    TwoPlaceholders,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "metric name is empty"),
            NameError::TooLong { len } => {
                write!(f, "metric name is {len} bytes, at most {MAX_NAME_LEN}")
            }
            NameError::BadByte { offset, byte } => write!(
                f,
                "metric name has byte 0x{byte:02x} at offset {offset}; \
                 allowed: letters, digits, _ . : / - and one {{0}}"
            ),
            NameError::TwoPlaceholders => write!(f, "metric name has {{0}} more than once"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a metric name: 1 to 64 bytes of `A-Z a-z 0-9 _ . : / -`, with at
/// most one `{0}` placeholder. The Python package and the module apply the
/// same rule (docs/app-metrics.md).
pub fn check_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    let mut placeholders = 0;
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-') {
            i += 1;
        } else if name[i..].starts_with(PLACEHOLDER) {
            placeholders += 1;
            if placeholders > 1 {
                return Err(NameError::TwoPlaceholders);
            }
            i += PLACEHOLDER.len();
        } else {
            return Err(NameError::BadByte { offset: i, byte: b });
        }
    }
    Ok(())
}

/// The name of statistic `stat` (`p99`, `count`, …) derived from metric
/// `name`: `{0}` replaced by `stat`, or `name.stat` without a placeholder.
pub fn derived_name(name: &str, stat: &str) -> String {
    match name.find("{0}") {
        Some(i) => format!("{}{stat}{}", &name[..i], &name[i + 3..]),
        None => format!("{name}.{stat}"),
    }
}

/// A distribution's totals since the process started, borrowed for
/// encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distribution<'a> {
    /// Values recorded.
    pub count: u64,
    /// Their sum, seconds.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Values per latency bucket (counts modulo 2^32).
    pub buckets: &'a [u32; BUCKETS],
}

/// One metric's value, borrowed for encoding.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AppValue<'a> {
    /// Sum of the increments since the process started.
    Counter(f64),
    /// The last level set.
    Gauge(f64),
    /// The values recorded since the process started.
    Distribution(Distribution<'a>),
}

impl AppValue<'_> {
    /// Its type.
    pub fn metric_type(&self) -> MetricType {
        match self {
            AppValue::Counter(_) => MetricType::Counter,
            AppValue::Gauge(_) => MetricType::Gauge,
            AppValue::Distribution(_) => MetricType::Distribution,
        }
    }
}

/// One metric for [`encode`]: a valid name (see [`check_name`]) and its
/// value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppMetric<'a> {
    /// The name, as [`check_name`] accepts it.
    pub name: &'a [u8],
    /// The value.
    pub value: AppValue<'a>,
}

/// Who sends an `app_metrics` datagram, and what it carries besides the
/// metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppMetricsHead<'a> {
    /// 5 (cut to 127 bytes; omitted when empty).
    pub hostname: &'a [u8],
    /// 6 (cut to 63 bytes; omitted when empty).
    pub process_group: &'a [u8],
    /// 407: calls the process refused since it started because its name
    /// table was full.
    pub dropped_calls: u64,
}

fn nonzero_buckets(b: &[u32; BUCKETS]) -> usize {
    b.iter().filter(|&&c| c != 0).count()
}

/// Bytes one metric adds to a datagram: its name (plus a separator), its
/// type byte and value, and for a distribution its three F64 elements and
/// its bucket block.
fn metric_len(m: &AppMetric<'_>) -> usize {
    let base = m.name.len() + 1 + 1 + 8;
    match &m.value {
        AppValue::Distribution(d) => base + 3 * 8 + 4 * (1 + 2 * nonzero_buckets(d.buckets)),
        _ => base,
    }
}

/// Bytes of a datagram without metrics (header, identity, the three
/// always-present columns, the dropped-name count).
fn fixed_len(h: &AppMetricsHead<'_>) -> usize {
    let s = |n: usize| if n == 0 { 0 } else { 5 + n };
    HEADER_LEN
        + s(h.hostname.len().min(CUT_HOSTNAME))
        + s(h.process_group.len().min(CUT_PROCESS_GROUP))
        + 3 * 5
        + 11
}

/// The length [`encode`] gives for these metrics (before any cap).
pub fn encoded_len(h: &AppMetricsHead<'_>, metrics: &[AppMetric<'_>]) -> usize {
    let mut n = fixed_len(h) + metrics.iter().map(metric_len).sum::<usize>();
    if !metrics.is_empty() {
        n -= 1; // n names, n - 1 separators
    }
    if metrics
        .iter()
        .any(|m| m.value.metric_type() == MetricType::Distribution)
    {
        n += 4 * 5;
    }
    n
}

/// How many of `metrics`, from the first, fit in one datagram of at most
/// `cap` bytes (use [`MAX_DATAGRAM`]). At least one whenever any metric
/// fits alone, which every valid one does in 8192 bytes.
pub fn fitting(h: &AppMetricsHead<'_>, metrics: &[AppMetric<'_>], cap: usize) -> usize {
    let mut len = fixed_len(h) - 1;
    let mut dist = false;
    for (i, m) in metrics.iter().enumerate() {
        len += metric_len(m);
        if !dist && m.value.metric_type() == MetricType::Distribution {
            dist = true;
            len += 4 * 5;
        }
        if len > cap {
            return i;
        }
    }
    metrics.len()
}

/// Encodes an `app_metrics` datagram (kind 10) into `buf`; returns its
/// length. Nothing is allocated. Fails with [`EncodeError::Overflow`] when
/// the metrics do not fit (see [`fitting`] to split them).
pub fn encode(
    buf: &mut [u8],
    pid: u32,
    seq: u32,
    stamp: f64,
    h: &AppMetricsHead<'_>,
    metrics: &[AppMetric<'_>],
) -> Result<usize, EncodeError> {
    let mut e = Encoder::new(buf, &Header::new(Kind::APP_METRICS, pid, seq, stamp));
    host_and_group(&mut e, h.hostname, h.process_group)?;

    let names_len = metrics.iter().map(|m| m.name.len() + 1).sum::<usize>();
    let names_len = names_len.saturating_sub(1);
    let body = e.reserve(id::APP_METRIC_NAMES, Tag::Bytes, names_len, names_len)?;
    let mut o = 0;
    for (i, m) in metrics.iter().enumerate() {
        if i > 0 {
            body[o] = NAME_SEPARATOR;
            o += 1;
        }
        body[o..o + m.name.len()].copy_from_slice(m.name);
        o += m.name.len();
    }

    let n = metrics.len();
    let body = e.reserve(id::APP_METRIC_TYPES, Tag::Bytes, n, n)?;
    for (b, m) in body.iter_mut().zip(metrics) {
        *b = m.value.metric_type() as u8;
    }

    let body = e.reserve(id::APP_METRIC_VALUES, Tag::F64Array, n, 8 * n)?;
    for (c, m) in body.chunks_exact_mut(8).zip(metrics) {
        let v = match m.value {
            AppValue::Counter(v) | AppValue::Gauge(v) => v,
            AppValue::Distribution(d) => d.sum,
        };
        c.copy_from_slice(&v.to_bits().to_le_bytes());
    }

    let dists = || {
        metrics.iter().filter_map(|m| match m.value {
            AppValue::Distribution(d) => Some(d),
            _ => None,
        })
    };
    let d = dists().count();
    if d > 0 {
        let columns: [(u16, Column); 3] = [
            (id::APP_METRIC_COUNTS, |d| d.count as f64),
            (id::APP_METRIC_MINS, |d| d.min),
            (id::APP_METRIC_MAXES, |d| d.max),
        ];
        for (fid, get) in columns {
            let body = e.reserve(fid, Tag::F64Array, d, 8 * d)?;
            for (c, dist) in body.chunks_exact_mut(8).zip(dists()) {
                c.copy_from_slice(&get(&dist).to_bits().to_le_bytes());
            }
        }
        let elems = dists()
            .map(|d| 1 + 2 * nonzero_buckets(d.buckets))
            .sum::<usize>();
        let body = e.reserve(id::APP_METRIC_BUCKETS, Tag::I32Array, elems, 4 * elems)?;
        let mut o = 0;
        let mut put = |v: u32| {
            body[o..o + 4].copy_from_slice(&v.to_le_bytes());
            o += 4;
        };
        for dist in dists() {
            put(nonzero_buckets(dist.buckets) as u32);
            for (i, &c) in dist.buckets.iter().enumerate() {
                if c != 0 {
                    put(i as u32);
                    put(c);
                }
            }
        }
    }
    e.u64(id::APP_METRIC_DROPPED_CALLS, h.dropped_calls)?;
    Ok(e.finish())
}

/// Reads one F64 column of a distribution.
type Column = fn(&Distribution<'_>) -> f64;

/// A decoded metric value (owned).
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// Sum of the increments since the process started.
    Counter(f64),
    /// The last level set.
    Gauge(f64),
    /// The values recorded since the process started.
    Distribution(Box<DistributionTotals>),
}

impl MetricValue {
    /// Its type.
    pub fn metric_type(&self) -> MetricType {
        match self {
            MetricValue::Counter(_) => MetricType::Counter,
            MetricValue::Gauge(_) => MetricType::Gauge,
            MetricValue::Distribution(_) => MetricType::Distribution,
        }
    }
}

/// A decoded distribution.
#[derive(Clone, Debug, PartialEq)]
pub struct DistributionTotals {
    /// Values recorded.
    pub count: u64,
    /// Their sum, seconds.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Values per bucket, modulo 2^32.
    pub buckets: [u32; BUCKETS],
}

/// One decoded metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// The name (valid, so ASCII).
    pub name: String,
    /// The value.
    pub value: MetricValue,
}

/// A decoded `app_metrics` datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct AppMetrics {
    /// Field 5, empty when absent.
    pub hostname: String,
    /// Field 6, empty when absent (embedded mode).
    pub process_group: String,
    /// Field 407.
    pub dropped_calls: u64,
    /// The metrics, in wire order.
    pub metrics: Vec<Metric>,
}

/// Why a datagram of kind 10 does not read as application metrics (it is
/// well-formed TLV; its columns do not agree).
#[derive(Clone, Debug, PartialEq)]
pub enum AppMetricsError {
    /// Not kind 10.
    NotAppMetrics {
        /// Its kind.
        kind: u8,
    },
    /// A required field is absent.
    Missing {
        /// Its id.
        field: u16,
    },
    /// A field with another type tag than the layout's.
    WrongType {
        /// Its id.
        field: u16,
    },
    /// A column's length disagrees with the names (or the distributions).
    Length {
        /// The column's id.
        field: u16,
        /// Elements expected.
        expected: usize,
        /// Elements found.
        found: usize,
    },
    /// Name number `index` is not valid.
    Name {
        /// Position among the names.
        index: usize,
        /// What is wrong with it.
        error: NameError,
    },
    /// The same name twice.
    DuplicateName {
        /// Position of the second one.
        index: usize,
    },
    /// A byte of 401 that is not `c`, `g` or `d`.
    Type {
        /// Position among the names.
        index: usize,
        /// The byte.
        byte: u8,
    },
    /// A value that no sender produces (non-finite, a negative counter or
    /// distribution figure, a count that is not a whole number, min > max).
    Value {
        /// Position among the names.
        index: usize,
    },
    /// The bucket column does not parse (a block runs past its end, an
    /// index out of range or not rising, elements left over).
    Buckets {
        /// Element offset in field 406 where it went wrong.
        offset: usize,
    },
}

impl fmt::Display for AppMetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppMetricsError::NotAppMetrics { kind } => write!(f, "kind {kind} is not app_metrics"),
            AppMetricsError::Missing { field } => write!(f, "app_metrics without field {field}"),
            AppMetricsError::WrongType { field } => {
                write!(f, "app_metrics field {field} has the wrong type")
            }
            AppMetricsError::Length {
                field,
                expected,
                found,
            } => write!(
                f,
                "app_metrics field {field} has {found} elements, expected {expected}"
            ),
            AppMetricsError::Name { index, error } => write!(f, "app metric {index}: {error}"),
            AppMetricsError::DuplicateName { index } => {
                write!(f, "app metric {index}: name sent twice")
            }
            AppMetricsError::Type { index, byte } => {
                write!(f, "app metric {index}: unknown type byte 0x{byte:02x}")
            }
            AppMetricsError::Value { index } => write!(f, "app metric {index}: impossible value"),
            AppMetricsError::Buckets { offset } => {
                write!(f, "app_metrics buckets malformed at element {offset}")
            }
        }
    }
}

impl std::error::Error for AppMetricsError {}

fn bytes_field<'a>(s: &SampleRef<'a>, field: u16) -> Result<Option<&'a [u8]>, AppMetricsError> {
    match s.get(field) {
        None => Ok(None),
        Some(ValueRef::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(AppMetricsError::WrongType { field }),
    }
}

fn f64_column(s: &SampleRef<'_>, field: u16, len: usize) -> Result<Vec<f64>, AppMetricsError> {
    match s.get(field) {
        None => Err(AppMetricsError::Missing { field }),
        Some(ValueRef::F64Array(b)) if b.len() / 8 == len => Ok(b
            .chunks_exact(8)
            .map(|c| f64::from_bits(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))))
            .collect()),
        Some(ValueRef::F64Array(b)) => Err(AppMetricsError::Length {
            field,
            expected: len,
            found: b.len() / 8,
        }),
        Some(_) => Err(AppMetricsError::WrongType { field }),
    }
}

fn text(b: Option<&[u8]>) -> String {
    b.map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// Reads an `app_metrics` datagram that [`crate::decode_ref`] accepted.
/// Total: every input gives the metrics or a typed error.
pub fn decode(s: &SampleRef<'_>) -> Result<AppMetrics, AppMetricsError> {
    if s.header.kind != Kind::APP_METRICS {
        return Err(AppMetricsError::NotAppMetrics {
            kind: s.header.kind.0,
        });
    }
    let names = bytes_field(s, id::APP_METRIC_NAMES)?.ok_or(AppMetricsError::Missing {
        field: id::APP_METRIC_NAMES,
    })?;
    let names: Vec<&[u8]> = if names.is_empty() {
        Vec::new()
    } else {
        names.split(|&b| b == NAME_SEPARATOR).collect()
    };
    let n = names.len();
    for (index, name) in names.iter().enumerate() {
        check_name(name).map_err(|error| AppMetricsError::Name { index, error })?;
        if names[..index].contains(name) {
            return Err(AppMetricsError::DuplicateName { index });
        }
    }
    let types = bytes_field(s, id::APP_METRIC_TYPES)?.ok_or(AppMetricsError::Missing {
        field: id::APP_METRIC_TYPES,
    })?;
    if types.len() != n {
        return Err(AppMetricsError::Length {
            field: id::APP_METRIC_TYPES,
            expected: n,
            found: types.len(),
        });
    }
    let mut kinds = Vec::with_capacity(n);
    for (index, &byte) in types.iter().enumerate() {
        kinds.push(MetricType::from_u8(byte).ok_or(AppMetricsError::Type { index, byte })?);
    }
    let values = f64_column(s, id::APP_METRIC_VALUES, n)?;
    let d = kinds
        .iter()
        .filter(|&&k| k == MetricType::Distribution)
        .count();
    let (counts, mins, maxes, buckets) = if d > 0 {
        let buckets = match s.get(id::APP_METRIC_BUCKETS) {
            Some(ValueRef::I32Array(b)) => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<u32>>(),
            Some(_) => {
                return Err(AppMetricsError::WrongType {
                    field: id::APP_METRIC_BUCKETS,
                })
            }
            None => {
                return Err(AppMetricsError::Missing {
                    field: id::APP_METRIC_BUCKETS,
                })
            }
        };
        (
            f64_column(s, id::APP_METRIC_COUNTS, d)?,
            f64_column(s, id::APP_METRIC_MINS, d)?,
            f64_column(s, id::APP_METRIC_MAXES, d)?,
            buckets,
        )
    } else {
        Default::default()
    };

    let mut metrics = Vec::with_capacity(n);
    let mut di = 0;
    let mut bo = 0;
    for (index, ((name, kind), v)) in names.iter().zip(&kinds).zip(&values).enumerate() {
        let bad = AppMetricsError::Value { index };
        if !v.is_finite() {
            return Err(bad);
        }
        let value = match kind {
            MetricType::Counter if *v < 0.0 => return Err(bad),
            MetricType::Counter => MetricValue::Counter(*v),
            MetricType::Gauge => MetricValue::Gauge(*v),
            MetricType::Distribution => {
                let (count, min, max) = (counts[di], mins[di], maxes[di]);
                di += 1;
                let plausible = count >= 1.0
                    && count.fract() == 0.0
                    && count < 1.8e19
                    && *v >= 0.0
                    && min.is_finite()
                    && max.is_finite()
                    && 0.0 <= min
                    && min <= max;
                if !plausible {
                    return Err(bad);
                }
                let mut b = [0u32; BUCKETS];
                let k = *buckets
                    .get(bo)
                    .ok_or(AppMetricsError::Buckets { offset: bo })?
                    as usize;
                let block = buckets
                    .get(bo + 1..bo + 1 + 2 * k)
                    .ok_or(AppMetricsError::Buckets { offset: bo })?;
                let mut last = None;
                for (j, pair) in block.chunks_exact(2).enumerate() {
                    let i = pair[0] as usize;
                    if i >= BUCKETS || last.is_some_and(|l| i <= l) {
                        return Err(AppMetricsError::Buckets {
                            offset: bo + 1 + 2 * j,
                        });
                    }
                    last = Some(i);
                    b[i] = pair[1];
                }
                bo += 1 + 2 * k;
                MetricValue::Distribution(Box::new(DistributionTotals {
                    count: count as u64,
                    sum: *v,
                    min,
                    max,
                    buckets: b,
                }))
            }
        };
        metrics.push(Metric {
            name: String::from_utf8_lossy(name).into_owned(),
            value,
        });
    }
    if bo != buckets.len() {
        return Err(AppMetricsError::Buckets { offset: bo });
    }
    Ok(AppMetrics {
        hostname: text(bytes_field(s, id::HOSTNAME)?),
        process_group: text(bytes_field(s, id::PROCESS_GROUP)?),
        dropped_calls: match s.get(id::APP_METRIC_DROPPED_CALLS) {
            Some(ValueRef::U64(v)) => v,
            Some(_) => {
                return Err(AppMetricsError::WrongType {
                    field: id::APP_METRIC_DROPPED_CALLS,
                })
            }
            None => {
                return Err(AppMetricsError::Missing {
                    field: id::APP_METRIC_DROPPED_CALLS,
                })
            }
        },
        metrics,
    })
}

/// Encodes `metrics` into as many datagrams as they need (each at most
/// [`MAX_DATAGRAM`] bytes), calling `send` with each and with the number
/// of metrics it holds; `seq` gives each datagram's sequence number.
/// Stops at the first `send` that returns `false`; returns how many
/// metrics went out. Nothing is allocated.
pub fn encode_all(
    buf: &mut [u8; MAX_DATAGRAM],
    pid: u32,
    mut seq: impl FnMut() -> u32,
    stamp: f64,
    h: &AppMetricsHead<'_>,
    metrics: &[AppMetric<'_>],
    mut send: impl FnMut(&[u8], usize) -> bool,
) -> usize {
    let mut done = 0;
    loop {
        let rest = &metrics[done..];
        let k = fitting(h, rest, MAX_DATAGRAM);
        if k == 0 && !rest.is_empty() {
            return done; // cannot happen with valid names
        }
        let Ok(len) = encode(buf, pid, seq(), stamp, h, &rest[..k]) else {
            return done;
        };
        if !send(&buf[..len], k) {
            return done;
        }
        done += k;
        if done == metrics.len() {
            return done;
        }
    }
}

#[cfg(test)]
mod tests;
