//! The WebSocket messages of `serve`, parsed into [`Message`]s (on the
//! client thread). Every string that enters the monitor is made printable
//! here.
//!
//! Parsing is typed: each message is deserialised straight into structs
//! holding only the fields the monitor uses, and each sample of a snapshot
//! is reduced to a [`Tick`] as soon as it is read. A whole-history snapshot
//! of a big site is tens of megabytes of JSON; a `serde_json::Value` tree of
//! it took over thirty times that (`tests/top_memory.rs`). Scalars stay as
//! forgiving as they were: a field of the wrong type reads as absent.

use super::records::{Identity, LifeEvent, SlowRecord, Tick};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A message from `serve`, parsed (off the UI thread). Samples dominate
/// the stream, so they are stored inline; the client boxes whole messages.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    Snapshot(Box<Snapshot>),
    Sample {
        pid: u32,
        tick: Tick,
    },
    Slow {
        key: String,
        entry: SlowRecord,
    },
    SlowClear(Vec<(String, SlowRecord)>),
    Lifecycle(LifeEvent),
    /// GC and any future message type: counted, otherwise unused.
    Other,
}

/// The `snapshot` message.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub processes: Vec<SnapshotProcess>,
    pub slow: Vec<(String, SlowRecord)>,
    pub lifecycle: Vec<LifeEvent>,
    pub total_received: u64,
    pub decode_errors: u64,
    /// The server left older history out (its snapshot budget).
    pub history_truncated: bool,
}

/// One process of a snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotProcess {
    pub pid: u32,
    pub identity: Identity,
    pub drops: u64,
    pub ticks: Vec<Tick>,
}

/// Why a message could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("message without a type")]
    NoType,
}

/// Any JSON value, kept only as far as the monitor reads it: numbers keep
/// their JSON kind (as `serde_json::Value` would), strings their text,
/// arrays their elements; objects are skipped without being stored.
#[derive(Clone, Debug, Default)]
enum Scalar {
    #[default]
    Absent,
    U(u64),
    I(i64),
    F(f64),
    Bool(bool),
    Str(String),
    List(Vec<Scalar>),
}

impl Scalar {
    fn opt_f64(&self) -> Option<f64> {
        match *self {
            Scalar::U(u) => Some(u as f64),
            Scalar::I(i) => Some(i as f64),
            Scalar::F(f) => Some(f),
            _ => None,
        }
    }

    fn f64(&self) -> f64 {
        self.opt_f64().unwrap_or(0.0)
    }

    fn opt_i64(&self) -> Option<i64> {
        match *self {
            Scalar::U(u) => i64::try_from(u).ok(),
            Scalar::I(i) => Some(i),
            _ => None,
        }
    }

    /// A count: unsigned integers as they are, other numbers clamped at 0.
    fn u64(&self) -> u64 {
        match *self {
            Scalar::U(u) => u,
            _ => self.opt_f64().map(|f| f.max(0.0) as u64).unwrap_or(0),
        }
    }

    /// A string field, made [`printable`](crate::printable::printable) here,
    /// where it enters the monitor: hostnames, groups, paths and reasons
    /// come from whoever can write to the telemetry socket, and every view,
    /// `--once` and `--json` included, shows them only as escaped.
    fn text(&self) -> String {
        match self {
            Scalar::Str(s) => crate::printable::printable(s).into_owned(),
            _ => String::new(),
        }
    }

    fn list(&self) -> &[Scalar] {
        match self {
            Scalar::List(l) => l,
            _ => &[],
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::I(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::U(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::F(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Absent)
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Absent)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
        Scalar::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        let mut out = Vec::new();
        while let Some(x) = seq.next_element::<Scalar>()? {
            out.push(x);
        }
        Ok(Scalar::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Absent)
    }
}

/// Declares a message struct (every field defaulted when absent) with the
/// identity strings that a sample's `fields` and a snapshot's process both
/// carry, and its `identity()`. (Flattening a shared struct in would make
/// serde buffer the whole object.)
macro_rules! with_identity {
    ($(#[$m:meta])* struct $name:ident { $($f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        struct $name {
            $($f: $t,)*
            hostname: Scalar,
            process_group: Scalar,
            mod_wsgi_version: Scalar,
            python_version: Scalar,
            apache_version: Scalar,
            mpm_name: Scalar,
            process_parent_pid: Scalar,
        }

        impl $name {
            fn identity(&self) -> Identity {
                Identity {
                    hostname: self.hostname.text(),
                    process_group: self.process_group.text(),
                    mod_wsgi_version: self.mod_wsgi_version.text(),
                    python_version: self.python_version.text(),
                    apache_version: self.apache_version.text(),
                    mpm_name: self.mpm_name.text(),
                    process_parent_pid: self.process_parent_pid.u64(),
                }
            }
        }
    };
}

with_identity! {
/// The `fields` of a `request_metrics` sample that the monitor reads.
/// Phase fields are named `{phase}_time`, `_min`, `_max`, `_buckets` in
/// [`PHASES`](super::PHASES) order.
struct FieldsJson {
    sample_period: Scalar,
    slow_requests_threshold: Scalar,
    request_count: Scalar,
    request_throughput: Scalar,
    capacity_utilization: Scalar,
    cpu_user_utilization: Scalar,
    cpu_system_utilization: Scalar,
    cpu_utilization: Scalar,
    memory_rss: Scalar,
    memory_max_rss: Scalar,
    request_threads_maximum: Scalar,
    request_threads_active: Scalar,
    input_bytes_total: Scalar,
    output_bytes_total: Scalar,
    server_time: Scalar,
    server_time_min: Scalar,
    server_time_max: Scalar,
    server_time_buckets: Scalar,
    queue_time: Scalar,
    queue_time_min: Scalar,
    queue_time_max: Scalar,
    queue_time_buckets: Scalar,
    daemon_time: Scalar,
    daemon_time_min: Scalar,
    daemon_time_max: Scalar,
    daemon_time_buckets: Scalar,
    application_time: Scalar,
    application_time_min: Scalar,
    application_time_max: Scalar,
    application_time_buckets: Scalar,
    request_time: Scalar,
    request_time_min: Scalar,
    request_time_max: Scalar,
    request_time_buckets: Scalar,
    status_1xx_total: Scalar,
    status_2xx_total: Scalar,
    status_3xx_total: Scalar,
    status_4xx_total: Scalar,
    status_5xx_total: Scalar,
    request_threads_current_elapsed: Scalar,
}
}

impl FieldsJson {
    /// `(mean, min, max, buckets)` of each phase, in [`PHASES`](super::PHASES) order.
    fn phases(&self) -> [[&Scalar; 4]; 5] {
        [
            [
                &self.server_time,
                &self.server_time_min,
                &self.server_time_max,
                &self.server_time_buckets,
            ],
            [
                &self.queue_time,
                &self.queue_time_min,
                &self.queue_time_max,
                &self.queue_time_buckets,
            ],
            [
                &self.daemon_time,
                &self.daemon_time_min,
                &self.daemon_time_max,
                &self.daemon_time_buckets,
            ],
            [
                &self.application_time,
                &self.application_time_min,
                &self.application_time_max,
                &self.application_time_buckets,
            ],
            [
                &self.request_time,
                &self.request_time_min,
                &self.request_time_max,
                &self.request_time_buckets,
            ],
        ]
    }
}

/// A `sample` message body (`kind`, `pid`, `stamp`, `seq`, `fields`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SampleJson {
    kind: Scalar,
    pid: Scalar,
    stamp: Scalar,
    seq: Scalar,
    fields: Option<FieldsJson>,
}

impl SampleJson {
    /// Missing or not a string counts as `request_metrics`, as in a
    /// snapshot's sample list.
    fn is_request_metrics(&self) -> bool {
        match &self.kind {
            Scalar::Str(k) => k == "request_metrics",
            _ => true,
        }
    }

    fn tick(&self) -> Tick {
        let empty = FieldsJson::default();
        let f = self.fields.as_ref().unwrap_or(&empty);
        let mut t = Tick {
            stamp: self.stamp.f64(),
            seq: self.seq.u64(),
            sample_period: f.sample_period.f64(),
            slow_requests_threshold: f.slow_requests_threshold.f64(),
            request_count: f.request_count.f64(),
            request_throughput: f.request_throughput.f64(),
            capacity_utilization: f.capacity_utilization.f64(),
            cpu_user: f.cpu_user_utilization.f64(),
            cpu_system: f.cpu_system_utilization.f64(),
            cpu: f.cpu_utilization.f64(),
            memory_rss: f.memory_rss.f64(),
            memory_max_rss: f.memory_max_rss.f64(),
            threads_maximum: f.request_threads_maximum.f64(),
            threads_active: f.request_threads_active.f64(),
            input_bytes: f.input_bytes_total.f64(),
            output_bytes: f.output_bytes_total.f64(),
            identity: f.identity(),
            ..Tick::default()
        };
        for (i, [mean, min, max, buckets]) in f.phases().into_iter().enumerate() {
            t.means[i] = mean.opt_f64();
            t.mins[i] = min.opt_f64();
            t.maxs[i] = max.opt_f64();
            t.buckets[i] = buckets
                .list()
                .iter()
                .take(256)
                .enumerate()
                .filter_map(|(k, x)| {
                    let c = x.opt_i64().unwrap_or(0);
                    (c > 0).then(|| (k as u8, c.min(u32::MAX as i64) as u32))
                })
                .collect();
        }
        let status = [
            &f.status_1xx_total,
            &f.status_2xx_total,
            &f.status_3xx_total,
            &f.status_4xx_total,
            &f.status_5xx_total,
        ];
        for (i, s) in status.into_iter().enumerate() {
            t.status[i] = s.f64();
        }
        t.current_elapsed = f
            .request_threads_current_elapsed
            .list()
            .iter()
            .map(Scalar::f64)
            .collect();
        t
    }
}

/// A snapshot's sample, reduced to its [`Tick`] as soon as it is read
/// (`None` for samples of other kinds).
#[derive(Debug, Deserialize)]
#[serde(from = "SampleJson")]
struct SnapshotTick(Option<Tick>);

impl From<SampleJson> for SnapshotTick {
    fn from(s: SampleJson) -> SnapshotTick {
        SnapshotTick(s.is_request_metrics().then(|| s.tick()))
    }
}

with_identity! {
/// One process of a snapshot; its GC lists are skipped unread.
struct ProcessJson {
    pid: Scalar,
    drops: Scalar,
    samples: Option<Vec<SnapshotTick>>,
}
}

impl ProcessJson {
    fn into_process(self) -> SnapshotProcess {
        let identity = self.identity();
        SnapshotProcess {
            pid: self.pid.u64() as u32,
            identity,
            drops: self.drops.u64(),
            ticks: self
                .samples
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.0)
                .collect(),
        }
    }
}

/// A slow-request record's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SlowJson {
    pid: Scalar,
    thread_id: Scalar,
    log_id: Scalar,
    method: Scalar,
    script_name: Scalar,
    path_info: Scalar,
    start_stamp: Scalar,
    duration: Scalar,
    state: Scalar,
    status: Scalar,
    cpu_user_time: Scalar,
    cpu_system_time: Scalar,
    input_bytes: Scalar,
    input_reads: Scalar,
    output_bytes: Scalar,
    output_writes: Scalar,
}

impl SlowJson {
    fn record(&self, stamp: f64) -> SlowRecord {
        SlowRecord {
            pid: self.pid.u64() as u32,
            thread_id: self.thread_id.u64(),
            log_id: self.log_id.text(),
            method: self.method.text(),
            script_name: self.script_name.text(),
            path_info: self.path_info.text(),
            start_stamp: self.start_stamp.f64(),
            duration: self.duration.f64(),
            state: self.state.u64(),
            status: self.status.u64(),
            cpu_user_time: self.cpu_user_time.f64(),
            cpu_system_time: self.cpu_system_time.f64(),
            input_bytes: self.input_bytes.u64(),
            input_reads: self.input_reads.u64(),
            output_bytes: self.output_bytes.u64(),
            output_writes: self.output_writes.u64(),
            refreshed_stamp: stamp,
        }
    }
}

/// `{"key": …, "entry": {…}}` of a slow list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyedSlowJson {
    key: Option<serde_json::Value>,
    entry: Option<SlowJson>,
}

/// A lifecycle event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LifeJson {
    kind: Scalar,
    pid: Scalar,
    stamp: Scalar,
    hostname: Scalar,
    process_group: Scalar,
    shutdown_reason: Scalar,
}

impl LifeJson {
    fn event(&self) -> LifeEvent {
        LifeEvent {
            kind: self.kind.text(),
            pid: self.pid.u64() as u32,
            stamp: self.stamp.f64(),
            hostname: self.hostname.text(),
            process_group: self.process_group.text(),
            shutdown_reason: self.shutdown_reason.text(),
        }
    }
}

/// Every field any message type carries at its top level.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MessageJson {
    #[serde(rename = "type")]
    ty: Scalar,
    // sample
    kind: Scalar,
    pid: Scalar,
    seq: Scalar,
    stamp: Scalar,
    fields: Option<FieldsJson>,
    // slow_request, slow_clear
    key: Option<serde_json::Value>,
    entry: Option<SlowJson>,
    kept: Option<Vec<KeyedSlowJson>>,
    // lifecycle
    event: Option<LifeJson>,
    // snapshot
    total_received: Scalar,
    decode_errors: Scalar,
    history_truncated: Scalar,
    processes: Option<Vec<ProcessJson>>,
    slow_requests: Option<Vec<KeyedSlowJson>>,
    lifecycle_events: Option<Vec<LifeJson>>,
}

fn key_string(k: Option<&serde_json::Value>) -> String {
    k.map(|k| k.to_string()).unwrap_or_default()
}

/// Parses one WebSocket text frame.
pub fn parse_message(text_frame: &str) -> Result<Message, ParseError> {
    let m: MessageJson = serde_json::from_str(text_frame)?;
    let Scalar::Str(ty) = &m.ty else {
        return Err(ParseError::NoType);
    };
    Ok(match ty.as_str() {
        "sample" => {
            let s = SampleJson {
                kind: m.kind,
                pid: m.pid,
                stamp: m.stamp,
                seq: m.seq,
                fields: m.fields,
            };
            // Unlike a snapshot's list, a live sample must say its kind.
            if !matches!(&s.kind, Scalar::Str(k) if k == "request_metrics") {
                return Ok(Message::Other);
            }
            Message::Sample {
                pid: s.pid.u64() as u32,
                tick: s.tick(),
            }
        }
        "slow_request" => Message::Slow {
            key: key_string(m.key.as_ref()),
            entry: m.entry.unwrap_or_default().record(m.stamp.f64()),
        },
        "slow_clear" => Message::SlowClear(slow_list(m.kept.unwrap_or_default(), 0.0)),
        "lifecycle" => match m.event {
            Some(e) => Message::Lifecycle(e.event()),
            None => Message::Other,
        },
        "snapshot" => {
            let processes: Vec<SnapshotProcess> = m
                .processes
                .unwrap_or_default()
                .into_iter()
                .map(ProcessJson::into_process)
                .collect();
            // Snapshot entries carry no stamp: they are as fresh as the
            // newest sample in the snapshot (the server expires stale ones).
            let newest = processes
                .iter()
                .filter_map(|p| p.ticks.last().map(|t| t.stamp))
                .fold(0.0, f64::max);
            Message::Snapshot(Box::new(Snapshot {
                processes,
                slow: slow_list(m.slow_requests.unwrap_or_default(), newest),
                lifecycle: m
                    .lifecycle_events
                    .unwrap_or_default()
                    .iter()
                    .map(LifeJson::event)
                    .collect(),
                total_received: m.total_received.u64(),
                decode_errors: m.decode_errors.u64(),
                history_truncated: matches!(m.history_truncated, Scalar::Bool(true)),
            }))
        }
        _ => Message::Other,
    })
}

/// Parses one already-decoded JSON message (tests build messages as
/// values).
#[cfg(test)]
pub fn parse_value(m: &serde_json::Value) -> Result<Message, ParseError> {
    parse_message(&m.to_string())
}

fn slow_list(v: Vec<KeyedSlowJson>, stamp: f64) -> Vec<(String, SlowRecord)> {
    v.into_iter()
        .map(|x| {
            let e = x.entry.unwrap_or_default();
            let st = if stamp > 0.0 {
                stamp
            } else {
                e.start_stamp.f64() + e.duration.f64()
            };
            (key_string(x.key.as_ref()), e.record(st))
        })
        .collect()
}
