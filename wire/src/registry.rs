//! The field registry: every field id of wire format v1 with its decoder name
//! and wire type. Names are the reference decoder's
//! names exactly, because they are also the JSON keys of the ingester's API.

use crate::Tag;

/// One registered field: its id, the reference decoder's name, and the type
/// tag the reporter uses for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// Field id on the wire.
    pub id: u16,
    /// Name used by the reference decoder and in every JSON API.
    pub name: &'static str,
    /// Type tag the reporter emits for this field.
    pub tag: Tag,
}

macro_rules! registry {
    ($( $konst:ident = $id:literal, $name:literal, $tag:ident; )*) => {
        /// Field id constants, named after the wire names.
        pub mod id {
            $(
                #[doc = concat!("`", $name, "`")]
                pub const $konst: u16 = $id;
            )*
        }
        /// Every registered field, sorted by id.
        pub const FIELDS: &[FieldDef] = &[
            $( FieldDef { id: $id, name: $name, tag: Tag::$tag }, )*
        ];
    };
}

registry! {
    MOD_WSGI_VERSION = 1, "mod_wsgi_version", Bytes;
    PYTHON_VERSION = 2, "python_version", Bytes;
    APACHE_VERSION = 3, "apache_version", Bytes;
    MPM_NAME = 4, "mpm_name", Bytes;
    HOSTNAME = 5, "hostname", Bytes;
    PROCESS_GROUP = 6, "process_group", Bytes;
    PROCESS_PARENT_PID = 7, "process_parent_pid", U64;
    INTERPRETER_NAME = 8, "interpreter_name", Bytes;
    SAMPLE_PERIOD = 10, "sample_period", F64;
    TELEMETRY_INTERVAL = 11, "telemetry_interval", F64;
    SLOW_REQUESTS_THRESHOLD = 12, "slow_requests_threshold", F64;
    SWITCH_INTERVAL = 13, "switch_interval", F64;
    REPORTER_DROPPED_DATAGRAMS = 19, "reporter_dropped_datagrams", U64;
    REQUEST_COUNT = 20, "request_count", U64;
    REQUEST_THROUGHPUT = 21, "request_throughput", F64;
    CAPACITY_UTILIZATION = 22, "capacity_utilization", F64;
    CPU_USER_UTILIZATION = 30, "cpu_user_utilization", F64;
    CPU_SYSTEM_UTILIZATION = 31, "cpu_system_utilization", F64;
    CPU_UTILIZATION = 32, "cpu_utilization", F64;
    CPU_USER_TIME = 35, "cpu_user_time", F64;
    CPU_SYSTEM_TIME = 36, "cpu_system_time", F64;
    CPU_TIME = 37, "cpu_time", F64;
    MEMORY_RSS = 40, "memory_rss", U64;
    MEMORY_MAX_RSS = 41, "memory_max_rss", U64;
    REQUEST_THREADS_MAXIMUM = 50, "request_threads_maximum", U64;
    REQUEST_THREADS_STARTED = 51, "request_threads_started", U64;
    REQUEST_THREADS_ACTIVE = 52, "request_threads_active", U64;
    SERVER_TIME = 60, "server_time", F64;
    QUEUE_TIME = 61, "queue_time", F64;
    DAEMON_TIME = 62, "daemon_time", F64;
    APPLICATION_TIME = 63, "application_time", F64;
    REQUEST_TIME = 64, "request_time", F64;
    GIL_WAIT_TIME = 65, "gil_wait_time", F64;
    INPUT_READ_TIME = 66, "input_read_time", F64;
    OUTPUT_WRITE_TIME = 67, "output_write_time", F64;
    SERVER_TIME_MIN = 70, "server_time_min", F64;
    QUEUE_TIME_MIN = 71, "queue_time_min", F64;
    DAEMON_TIME_MIN = 72, "daemon_time_min", F64;
    APPLICATION_TIME_MIN = 73, "application_time_min", F64;
    REQUEST_TIME_MIN = 74, "request_time_min", F64;
    GIL_WAIT_TIME_MIN = 75, "gil_wait_time_min", F64;
    INPUT_READ_TIME_MIN = 76, "input_read_time_min", F64;
    OUTPUT_WRITE_TIME_MIN = 77, "output_write_time_min", F64;
    SERVER_TIME_MAX = 80, "server_time_max", F64;
    QUEUE_TIME_MAX = 81, "queue_time_max", F64;
    DAEMON_TIME_MAX = 82, "daemon_time_max", F64;
    APPLICATION_TIME_MAX = 83, "application_time_max", F64;
    REQUEST_TIME_MAX = 84, "request_time_max", F64;
    GIL_WAIT_TIME_MAX = 85, "gil_wait_time_max", F64;
    INPUT_READ_TIME_MAX = 86, "input_read_time_max", F64;
    OUTPUT_WRITE_TIME_MAX = 87, "output_write_time_max", F64;
    SERVER_TIME_BUCKETS = 90, "server_time_buckets", I32Array;
    QUEUE_TIME_BUCKETS = 91, "queue_time_buckets", I32Array;
    DAEMON_TIME_BUCKETS = 92, "daemon_time_buckets", I32Array;
    APPLICATION_TIME_BUCKETS = 93, "application_time_buckets", I32Array;
    REQUEST_TIME_BUCKETS = 94, "request_time_buckets", I32Array;
    GIL_WAIT_TIME_BUCKETS = 95, "gil_wait_time_buckets", I32Array;
    INPUT_READ_TIME_BUCKETS = 96, "input_read_time_buckets", I32Array;
    OUTPUT_WRITE_TIME_BUCKETS = 97, "output_write_time_buckets", I32Array;
    INPUT_BYTES_TOTAL = 100, "input_bytes_total", U64;
    INPUT_READS_TOTAL = 101, "input_reads_total", U64;
    OUTPUT_BYTES_TOTAL = 102, "output_bytes_total", U64;
    OUTPUT_WRITES_TOTAL = 103, "output_writes_total", U64;
    REQUEST_THREADS_COMPLETED = 110, "request_threads_completed", I32Array;
    REQUEST_THREADS_BUSY_TIME = 111, "request_threads_busy_time", F64Array;
    REQUEST_THREADS_CPU_TIME = 112, "request_threads_cpu_time", F64Array;
    REQUEST_THREADS_CURRENT_ELAPSED = 113, "request_threads_current_elapsed", F64Array;
    REQUEST_THREADS_MAX_DURATION = 114, "request_threads_max_duration", F64Array;
    STATUS_1XX_TOTAL = 120, "status_1xx_total", U64;
    STATUS_2XX_TOTAL = 121, "status_2xx_total", U64;
    STATUS_3XX_TOTAL = 122, "status_3xx_total", U64;
    STATUS_4XX_TOTAL = 123, "status_4xx_total", U64;
    STATUS_5XX_TOTAL = 124, "status_5xx_total", U64;
    SHUTDOWN_REASON = 130, "shutdown_reason", Bytes;
    PROCESS_UPTIME = 131, "process_uptime", F64;
    LIFETIME_REQUEST_COUNT = 132, "lifetime_request_count", U64;
    ACTIVE_REQUESTS_AT_DECISION = 133, "active_requests_at_decision", U64;
    ACTIVE_REQUESTS_AT_EXIT = 134, "active_requests_at_exit", U64;
    GRACEFUL_DRAIN = 135, "graceful_drain", U64;
    SLOW_RECORD_STATE = 200, "slow_record_state", U64;
    SLOW_START_STAMP = 201, "slow_start_stamp", F64;
    SLOW_DURATION = 202, "slow_duration", F64;
    SLOW_THREAD_ID = 203, "slow_thread_id", U64;
    SLOW_LOG_ID = 204, "slow_log_id", Bytes;
    SLOW_SERVER_PID = 205, "slow_server_pid", U64;
    SLOW_METHOD = 210, "slow_method", Bytes;
    SLOW_SCHEME = 211, "slow_scheme", Bytes;
    SLOW_HOSTNAME = 212, "slow_hostname", Bytes;
    SLOW_SCRIPT_NAME = 213, "slow_script_name", Bytes;
    SLOW_PATH_INFO = 214, "slow_path_info", Bytes;
    SLOW_PROTOCOL = 215, "slow_protocol", Bytes;
    SLOW_PEER_IP = 216, "slow_peer_ip", Bytes;
    SLOW_USER_AGENT = 217, "slow_user_agent", Bytes;
    SLOW_SERVER_TIME = 220, "slow_server_time", F64;
    SLOW_QUEUE_TIME = 221, "slow_queue_time", F64;
    SLOW_DAEMON_TIME = 222, "slow_daemon_time", F64;
    SLOW_APPLICATION_TIME = 223, "slow_application_time", F64;
    SLOW_GIL_WAIT_TIME = 224, "slow_gil_wait_time", F64;
    SLOW_GIL_WAIT_COUNT = 225, "slow_gil_wait_count", U64;
    SLOW_INPUT_BYTES = 230, "slow_input_bytes", U64;
    SLOW_INPUT_READS = 231, "slow_input_reads", U64;
    SLOW_OUTPUT_BYTES = 232, "slow_output_bytes", U64;
    SLOW_OUTPUT_WRITES = 233, "slow_output_writes", U64;
    SLOW_INPUT_READ_TIME = 234, "slow_input_read_time", F64;
    SLOW_OUTPUT_WRITE_TIME = 235, "slow_output_write_time", F64;
    SLOW_STATUS = 240, "slow_status", U64;
    SLOW_CPU_USER_TIME = 250, "slow_cpu_user_time", F64;
    SLOW_CPU_SYSTEM_TIME = 251, "slow_cpu_system_time", F64;
    SLOW_ACTIVE_AT_START = 260, "slow_active_at_start", U64;
    SLOW_ACTIVE_AT_COMPLETION = 261, "slow_active_at_completion", U64;
    GC_COUNT0 = 300, "gc_count0", U64;
    GC_COUNT1 = 301, "gc_count1", U64;
    GC_COUNT2 = 302, "gc_count2", U64;
    GC_THRESHOLD0 = 303, "gc_threshold0", U64;
    GC_THRESHOLD1 = 304, "gc_threshold1", U64;
    GC_THRESHOLD2 = 305, "gc_threshold2", U64;
    GC_COLLECTIONS0 = 306, "gc_collections0", U64;
    GC_COLLECTIONS1 = 307, "gc_collections1", U64;
    GC_COLLECTIONS2 = 308, "gc_collections2", U64;
    GC_COLLECTED0 = 309, "gc_collected0", U64;
    GC_COLLECTED1 = 310, "gc_collected1", U64;
    GC_COLLECTED2 = 311, "gc_collected2", U64;
    GC_UNCOLLECTABLE0 = 312, "gc_uncollectable0", U64;
    GC_UNCOLLECTABLE1 = 313, "gc_uncollectable1", U64;
    GC_UNCOLLECTABLE2 = 314, "gc_uncollectable2", U64;
    GC_IS_ENABLED = 315, "gc_is_enabled", U64;
    GC_FREEZE_COUNT = 316, "gc_freeze_count", U64;
    GC_DROPPED_EVENTS = 317, "gc_dropped_events", U64;
    GC_EVENT_START_STAMP = 320, "gc_event_start_stamp", F64;
    GC_EVENT_DURATION = 321, "gc_event_duration", F64;
    GC_EVENT_GENERATION = 322, "gc_event_generation", U64;
    GC_EVENT_COLLECTED = 323, "gc_event_collected", U64;
    GC_EVENT_UNCOLLECTABLE = 324, "gc_event_uncollectable", U64;
    APP_METRIC_NAMES = 400, "app_metric_names", Bytes;
    APP_METRIC_TYPES = 401, "app_metric_types", Bytes;
    APP_METRIC_VALUES = 402, "app_metric_values", F64Array;
    APP_METRIC_COUNTS = 403, "app_metric_counts", F64Array;
    APP_METRIC_MINS = 404, "app_metric_mins", F64Array;
    APP_METRIC_MAXES = 405, "app_metric_maxes", F64Array;
    APP_METRIC_BUCKETS = 406, "app_metric_buckets", I32Array;
    APP_METRIC_DROPPED_CALLS = 407, "app_metric_dropped_calls", U64;
}

/// The registered field with this id, if any.
pub fn field_def(id: u16) -> Option<&'static FieldDef> {
    FIELDS
        .binary_search_by_key(&id, |f| f.id)
        .ok()
        .map(|i| &FIELDS[i])
}

/// The registered field with this decoder name, if any.
pub fn field_def_by_name(name: &str) -> Option<&'static FieldDef> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The decoder name of a field id: the registered name, or `id<N>` for an
/// unknown id (as the reference decoder names them).
pub fn field_name(id: u16) -> std::borrow::Cow<'static, str> {
    match field_def(id) {
        Some(f) => std::borrow::Cow::Borrowed(f.name),
        None => std::borrow::Cow::Owned(format!("id{id}")),
    }
}

/// The field id for a decoder name: a registered name, or `id<N>`.
pub fn field_id(name: &str) -> Option<u16> {
    if let Some(f) = field_def_by_name(name) {
        return Some(f.id);
    }
    let digits = name.strip_prefix("id")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_and_unique() {
        for w in FIELDS.windows(2) {
            assert!(w[0].id < w[1].id, "{} then {}", w[0].id, w[1].id);
        }
        let mut names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }

    #[test]
    fn names_and_ids_round_trip() {
        assert_eq!(field_name(1), "mod_wsgi_version");
        assert_eq!(field_name(999), "id999");
        assert_eq!(field_id("id999"), Some(999));
        assert_eq!(field_id("gc_event_uncollectable"), Some(324));
        assert_eq!(field_id("idx"), None);
        assert_eq!(field_id("id"), None);
        assert_eq!(field_id("id70000"), None);
        for f in FIELDS {
            assert_eq!(field_id(f.name), Some(f.id));
        }
    }
}
