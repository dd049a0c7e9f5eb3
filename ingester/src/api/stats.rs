//! `GET /api/stats` (the applications' own metrics, statvent-style: one
//! flat object, name -> summed value) and `GET /api/stats/detail` (the same
//! with each name's type, for the UI's Custom tab and `top`); both take
//! `?host=` and `?group=` (`""` for embedded mode). docs/app-metrics.md has
//! both formats. Built under the state lock from the model, which holds at
//! most 10 000 series, so the body is bounded.

use crate::api::reply::json_reply;
use crate::ingest::app_metrics::Filter as View;
use crate::ingest::receive::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use warp::http::StatusCode;
use warp::Filter;

/// The view a query asks for, or what is wrong with it.
fn view(q: &HashMap<String, String>) -> Result<View<'_>, String> {
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "host" | "group")) {
        return Err(format!("unknown parameter '{k}' (host, group)"));
    }
    Ok(View {
        host: q.get("host").map(String::as_str),
        group: q.get("group").map(String::as_str),
    })
}

/// Both routes.
pub(crate) fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
       + Clone
       + Send
       + Sync
       + 'static {
    let with_shared = warp::any().map(move || shared.clone());
    let answer = |detail: bool| {
        move |q: HashMap<String, String>, shared: Arc<Shared>| match view(&q) {
            Ok(v) => {
                let st = shared.lock();
                let body = if detail {
                    st.app.detail_json(&v)
                } else {
                    st.app.stats_json(&v)
                };
                drop(st);
                json_reply(StatusCode::OK, body)
            }
            Err(e) => json_reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": e }).to_string(),
            ),
        }
    };
    let flat = warp::path!("api" / "stats")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_shared.clone())
        .map(answer(false));
    let detail = warp::path!("api" / "stats" / "detail")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(with_shared)
        .map(answer(true));
    flat.or(detail).unify()
}
