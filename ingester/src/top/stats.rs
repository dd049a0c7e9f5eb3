//! The custom view's data: `serve`'s `GET /api/stats/detail` (the
//! application's own metrics, docs/app-metrics.md), asked once a second by
//! a background thread while the view is shown (see [`super::http`]). A
//! server without the endpoint (the reference's `serve` answers 404) gives
//! "application metrics not available"; nothing else is affected.

use super::http::{encode, get_json, Poller};
use super::model::{parse_stats, StatsAnswer, StatsKey};
use std::time::Duration;

/// How often the view asks (the module sends the metrics once a tick).
const PERIOD: Duration = Duration::from_secs(1);
/// After a refusal.
const RETRY: Duration = Duration::from_secs(5);

/// The path asked for a group filter.
pub fn stats_path(key: &StatsKey) -> String {
    match key {
        None => "/api/stats/detail".into(),
        Some(g) => format!("/api/stats/detail?group={}", encode(g)),
    }
}

/// Asks once.
pub fn fetch(ws_url: &str, key: &StatsKey) -> Result<StatsAnswer, String> {
    get_json(
        ws_url,
        &stats_path(key),
        "the server has no /api/stats/detail",
        parse_stats,
    )
}

/// The background poller of the custom view.
pub type Fetcher = Poller<StatsKey, Result<StatsAnswer, String>>;

/// Starts the poller for the `serve` whose WebSocket is `ws_url`.
pub fn spawn_fetcher(ws_url: String) -> Fetcher {
    Poller::spawn(move |key| {
        let answer = fetch(&ws_url, key);
        let again = if answer.is_ok() { PERIOD } else { RETRY };
        (answer, again)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_carry_the_group() {
        assert_eq!(stats_path(&None), "/api/stats/detail");
        assert_eq!(stats_path(&Some(String::new())), "/api/stats/detail?group=");
        assert_eq!(
            stats_path(&Some("my app".into())),
            "/api/stats/detail?group=my%20app"
        );
    }
}
