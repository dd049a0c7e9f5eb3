//! `GET /api/history` (points of a range, summed over the series that
//! match) and `GET /api/history/series` (the series held); docs/history.md
//! has both formats. Under the state lock the matching points are only
//! copied, still encoded; they are decoded and merged after it is let go.

use crate::api::reply::json_reply;
use crate::ingest::history::json;
use crate::ingest::receive::Shared;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::Filter;

/// Both routes.
pub(crate) fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
       + Clone
       + Send
       + Sync
       + 'static {
    let with_shared = warp::any().map(move || shared.clone());
    let points = warp::path!("api" / "history")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(with_shared.clone())
        .map(
            |q: Vec<(String, String)>, shared: Arc<Shared>| match json::parse_query(&q) {
                Ok(q) => {
                    // Only the copy is made under the lock: decoding a
                    // week of points and the JSON are not.
                    let found = json::extract(&shared.lock().history, &q);
                    let body = found.to_json().to_string();
                    json_reply(StatusCode::OK, body)
                }
                Err(e) => json_reply(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({ "error": e }).to_string(),
                ),
            },
        );
    let series = warp::path!("api" / "history" / "series")
        .and(warp::get())
        .and(with_shared)
        .map(|shared: Arc<Shared>| {
            let body = json::series_list(&shared.lock().history).to_string();
            json_reply(StatusCode::OK, body)
        });
    points.or(series).unify()
}
