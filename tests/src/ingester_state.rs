//! Reading an ingester's `/api/state` JSON (ours or the reference's).

/// Sum of a numeric sample field over every process in an `/api/state`.
pub fn state_sum(state: &serde_json::Value, field: &str) -> u64 {
    state["processes"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .flat_map(|p| p["samples"].as_array().cloned().unwrap_or_default())
                .filter(|s| s["kind"] == "request_metrics")
                .map(|s| s["fields"][field].as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

/// Per-pid sum of `request_count` in an `/api/state`.
pub fn state_counts(state: &serde_json::Value) -> std::collections::BTreeMap<u64, u64> {
    let mut m = std::collections::BTreeMap::new();
    for p in state["processes"].as_array().cloned().unwrap_or_default() {
        let n: u64 = p["samples"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|s| s["kind"] == "request_metrics")
            .map(|s| s["fields"]["request_count"].as_u64().unwrap_or(0))
            .sum();
        m.insert(p["pid"].as_u64().unwrap_or(0), n);
    }
    m
}

/// STOPPED events in an `/api/state`.
pub fn state_stopped(state: &serde_json::Value) -> Vec<serde_json::Value> {
    state["lifecycle_events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["kind"] == "process_stopped")
        .collect()
}
