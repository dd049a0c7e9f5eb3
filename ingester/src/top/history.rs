//! `top`'s time ranges beyond the live window: the overview's series read
//! from `serve`'s `GET /api/history` (see [`super::http`]) by a background
//! thread, again once per step of the answer. A server without the
//! endpoint (the reference's `serve` answers 404) or a `wss://` URL gives
//! "history not available"; the live view is unaffected. It never touches
//! the terminal.

use super::http::{encode, get_json, Poller};
use serde_json::Value;
use std::time::Duration;

/// Ranges offered by `t`; index 0 is the live window.
pub const RANGES: [&str; 5] = ["live", "1h", "6h", "24h", "7d"];
/// An answer is asked for again after its step, but not more often than this.
const MIN_REFRESH: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_secs(10);

/// What is asked: (range, group filter as `top` holds it).
pub type HistoryKey = (&'static str, Option<String>);

/// One point of an answer, the figures the overview draws.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryPoint {
    pub t: f64,
    pub rate: f64,
    pub capacity: Option<f64>,
    pub cpu: f64,
    pub rss_mean: f64,
    /// p95 of the total time over the point's requests (merged buckets).
    pub p95: Option<f64>,
}

/// An answer of `/api/history`.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryAnswer {
    pub from: f64,
    pub to: f64,
    pub step: f64,
    pub points: Vec<HistoryPoint>,
}

/// The ranged overview's data as `top` knows it.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum HistoryState {
    /// Live window selected: nothing asked.
    #[default]
    Idle,
    Loading,
    Ready(HistoryAnswer),
    /// Why not (shown as "history not available: …").
    Unavailable(String),
}

/// Parses an answer body.
pub fn parse_answer(body: &str) -> Result<HistoryAnswer, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
    let num = |v: &Value, k: &str| {
        v[k].as_f64()
            .ok_or_else(|| format!("no {k:?} in the answer"))
    };
    let points = v["points"]
        .as_array()
        .ok_or("no \"points\" in the answer")?
        .iter()
        .map(|p| {
            Ok(HistoryPoint {
                t: num(p, "t")?,
                rate: num(p, "rate")?,
                capacity: p["capacity_utilization"].as_f64(),
                cpu: num(p, "cpu_user")? + num(p, "cpu_system")?,
                rss_mean: p["gauges"]["rss_bytes"]["mean"].as_f64().unwrap_or(0.0),
                p95: p["latency"]["total"]["p95"]
                    .as_f64()
                    .filter(|_| p["latency"]["total"]["count"].as_u64() > Some(0)),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(HistoryAnswer {
        from: num(&v, "from")?,
        to: num(&v, "to")?,
        step: num(&v, "step")?,
        points,
    })
}

/// The path and query of the history request for `key`.
fn history_path(key: &HistoryKey) -> String {
    let mut path = format!("/api/history?range={}", key.0);
    if let Some(g) = &key.1 {
        path.push_str("&group=");
        path.push_str(&encode(g));
    }
    path
}

/// Asks for `key` once: the state to show.
pub fn fetch(ws_url: &str, key: &HistoryKey) -> HistoryState {
    match get_json(
        ws_url,
        &history_path(key),
        "the server has no /api/history",
        parse_answer,
    ) {
        Ok(a) => HistoryState::Ready(a),
        Err(e) => HistoryState::Unavailable(e),
    }
}

/// The background fetcher of the overview's range.
pub type Fetcher = Poller<HistoryKey, HistoryState>;

/// Starts the fetcher: an answer is asked for again after its step (at
/// least [`MIN_REFRESH`]), a refusal after [`RETRY`].
pub fn spawn_fetcher(ws_url: String) -> Fetcher {
    Poller::spawn(move |key| {
        let state = fetch(&ws_url, key);
        let again = match &state {
            HistoryState::Ready(a) => MIN_REFRESH.max(Duration::from_secs_f64(a.step)),
            _ => RETRY,
        };
        (state, again)
    })
}

#[cfg(test)]
mod tests {
    use super::super::http::api_target;
    use super::*;

    fn history_target(ws_url: &str, key: &HistoryKey) -> Result<(String, String), String> {
        api_target(ws_url, &history_path(key))
    }

    #[test]
    fn targets_follow_the_websocket_url() {
        let k = ("1h", None);
        assert_eq!(
            history_target("ws://127.0.0.1:8888/ws?history=full", &k).unwrap(),
            ("127.0.0.1:8888".into(), "/api/history?range=1h".into())
        );
        assert_eq!(
            history_target(
                "ws://example.org/telemetry/ws",
                &("24h", Some("my app".into()))
            )
            .unwrap(),
            (
                "example.org:80".into(),
                "/telemetry/api/history?range=24h&group=my%20app".into()
            )
        );
        assert!(history_target("wss://example.org/ws", &k).is_err());
    }

    #[test]
    fn answers_parse_and_refusals_are_reasons() {
        let a = parse_answer(
            r#"{"from":100,"to":160,"step":20,"points":[{"t":120,"rate":2.5,"cpu_user":0.25,"cpu_system":0.5,
            "capacity_utilization":null,"gauges":{"rss_bytes":{"min":1,"mean":2048,"max":4096}},
            "latency":{"total":{"count":0,"p95":null}}}]}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            HistoryAnswer {
                from: 100.0,
                to: 160.0,
                step: 20.0,
                points: vec![HistoryPoint {
                    t: 120.0,
                    rate: 2.5,
                    capacity: None,
                    cpu: 0.75,
                    rss_mean: 2048.0,
                    p95: None
                }]
            }
        );
        assert!(parse_answer("{\"error\":\"x\"}").is_err());
    }
}
