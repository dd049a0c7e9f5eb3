//! The JSON answer every API route sends, in one place below the routes
//! (`http`, `history`, `stats` all use it; none imports another for it).

use warp::http::{header, Response, StatusCode};

/// A JSON body with `status`, never cached (the API's answers are live).
pub(crate) fn json_reply(status: StatusCode, body: String) -> warp::reply::Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.into())
        .unwrap_or_default()
}
