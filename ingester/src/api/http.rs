//! HTTP routes and the WebSocket, on warp: the reference's routes and
//! messages (`docs/compatibility.md` section 2).
//!
//! `GET /` (UI with the base-path script injected), `GET /static/<file>`,
//! `GET /api/state`, `POST /api/slow/clear`, `GET /ws`, and `GET /metrics`
//! ([`crate::api::metrics`]). Differences from the
//! reference: cross-origin WebSocket upgrades and cross-origin POSTs are
//! refused (403); the base path is escaped so it cannot leave the script
//! element; the subscriber limit answers 503 before upgrading instead of
//! leaking the connection; the WebSocket's first snapshot and `/api/state`
//! are kept within a byte budget (clients such as the reference `top`
//! refuse messages over 4 MiB), even when the client asks for
//! `?history=full` (then it gets the oldest history trimmed, counted as
//! `http_state_trimmed`). Our UI asks for
//! `?batch=MS`: one frame per interval instead of one message per datagram
//! ([`crate::batch`]); every other client gets the reference's stream.
//!
//! Every request must name an allowed `Host` ([`guard`]); snapshots being
//! produced are limited in number, and a stalled one gives its place to a
//! new request ([`slots`]); the listener ([`server`]) bounds
//! connections and times out clients that do not send or do not read.
//! What is refused is counted ([`counters`]) and shown in `/api/state`.

pub(crate) mod guard;
pub(crate) mod server;
pub(crate) mod slots;

use crate::api::http_counters::HttpCounters;
use crate::api::reply::json_reply;
use crate::ingest::json;
use crate::ingest::receive::{Msg, Shared};
use futures_util::{SinkExt, StreamExt};
use guard::AllowedHosts;
use server::ConnHandle;
use slots::{Slot, SnapshotSlots};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use warp::http::{header, Response, StatusCode};
use warp::hyper::upgrade::OnUpgrade;
use warp::ws::Ws;
use warp::{Filter, Rejection, Reply};

/// HTTP-side configuration.
#[derive(Clone, Debug)]
pub(crate) struct HttpConfig {
    /// `--root-path`, normalised; empty means "use X-Forwarded-Prefix".
    pub(crate) root_path: String,
    /// Most concurrent WebSocket clients.
    pub(crate) max_clients: usize,
    /// Byte budget of a WebSocket client's first snapshot and of an
    /// `/api/state` body that names none (`None` = whole).
    pub(crate) snapshot_budget: Option<usize>,
    /// `--metrics-per-process`: `/metrics` series labelled by `pid` too.
    pub(crate) metrics_per_process: bool,
    /// Most snapshots (`/api/state` bodies, WebSocket first snapshots)
    /// being produced and sent at once.
    pub(crate) max_state_responses: usize,
    /// A snapshot whose write has waited this long for its client to read
    /// gives its place to a new request when none is free.
    pub(crate) state_stall_timeout: Duration,
    /// `Host` names requests may carry.
    pub(crate) allowed_hosts: AllowedHosts,
    /// A WebSocket client that sends nothing, not even the answer to a
    /// ping, for this long is disconnected (pings go out at least twice
    /// as often).
    pub(crate) ws_idle_timeout: Duration,
}

/// Normalises a base path as the reference does: trim, `""`/`"/"` → `""`,
/// leading `/` added, trailing `/` removed.
pub(crate) fn normalize_base(v: &str) -> String {
    let v = v.trim();
    if v.is_empty() || v == "/" {
        return String::new();
    }
    let mut s = if v.starts_with('/') {
        v.to_string()
    } else {
        format!("/{v}")
    };
    while s.len() > 1 && s.ends_with('/') {
        s.pop();
    }
    s
}

/// JSON string literal safe inside `<script>`: `<`, `>`, `&` and the JS line
/// separators are escaped.
pub(crate) fn script_json_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The index page with `window.TELEMETRY_BASE` / `TELEMETRY_VERSION`
/// injected before the first `</head>`.
pub(crate) fn render_index(html: &str, base: &str) -> String {
    let script = format!(
        "<script>window.TELEMETRY_BASE = {};window.TELEMETRY_VERSION = {};</script>\n",
        script_json_string(base),
        script_json_string(env!("CARGO_PKG_VERSION"))
    );
    match html.find("</head>") {
        Some(i) => format!("{}{}{}", &html[..i], script, &html[i..]),
        None => format!("{script}{html}"),
    }
}

/// True when a request's `Origin` (if any) names the same host as the request
/// (`Host`, or `X-Forwarded-Host` behind a proxy). Non-browser clients send
/// no Origin and are allowed.
pub(crate) fn same_origin(
    origin: Option<&str>,
    host: Option<&str>,
    fwd_host: Option<&str>,
) -> bool {
    let Some(origin) = origin else { return true };
    let Some(rest) = origin.split("://").nth(1) else {
        return false;
    };
    let o = rest.trim_end_matches('/').to_ascii_lowercase();
    [host, fwd_host]
        .into_iter()
        .flatten()
        .any(|h| h.split(',').next().map(|h| h.trim().to_ascii_lowercase()) == Some(o.clone()))
}

fn forbidden(msg: &str) -> warp::reply::Response {
    Response::builder()
        .status(StatusCode::FORBIDDEN)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(format!("{msg}\n").into())
        .unwrap_or_default()
}

/// The byte budget of a snapshot and whether the client asked for more
/// than the server's `cap` (`--snapshot-budget`, `None` = no limit).
/// `?budget=N` picks a smaller budget; `?budget=0`, `?history=full` (as
/// `/ws?history=full`) and a `?budget` over the cap ask for everything and
/// get the cap: whatever the query, the server never assembles more than
/// it allows (docs/security.md). A `budget` that is not a number is
/// ignored.
fn state_budget(q: &HashMap<String, String>, cap: Option<usize>) -> (Option<usize>, bool) {
    let asked = if q.get("history").is_some_and(|h| h == "full") {
        None
    } else {
        match q.get("budget").and_then(|b| b.parse::<usize>().ok()) {
            Some(0) => None,
            Some(b) => Some(b),
            None => return (cap, false),
        }
    };
    match (asked, cap) {
        (Some(a), Some(c)) if a <= c => (Some(a), false),
        (Some(a), None) => (Some(a), false),
        (_, cap) => (cap, cap.is_some()),
    }
}

/// 421 with one line naming the refused `Host` and the way to allow it.
fn misdirected(host: &str) -> warp::reply::Response {
    let host: String = host.chars().filter(|c| !c.is_control()).take(200).collect();
    Response::builder()
        .status(StatusCode::MISDIRECTED_REQUEST)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(
            format!("Host '{host}' is not served here (allow it with serve --allowed-host NAME)\n")
                .into(),
        )
        .unwrap_or_default()
}

fn json_response(body: String) -> warp::reply::Response {
    json_reply(StatusCode::OK, body)
}

/// Captures the state plus the ingester's own counters (caller holds the
/// state lock).
fn capture(
    shared: &Shared,
    counters: &HttpCounters,
    st: &crate::ingest::state::State,
) -> json::SnapshotRefs {
    let mut r = json::capture(st);
    r.extra.push((
        "receive_pauses",
        shared.receive_pauses.load(Ordering::Relaxed),
    ));
    r.extra.push(("slow_evicted", st.slow_evicted));
    r.extra
        .push(("history_evicted_for_bytes", st.evicted_for_bytes()));
    r.extra
        .push(("ws_messages_dropped", shared.lagged.load(Ordering::Relaxed)));
    r.extra.extend(counters.snapshot());
    r
}

/// Pieces of a streamed snapshot body: big enough to amortise the
/// hand-over, small enough that a few in flight cost little memory.
const BODY_CHUNK: usize = 256 << 10;

/// `GET /api/state`: the state is captured under the lock (reference
/// counts only) and serialised outside it, on a blocking thread, straight
/// into the response body in [`BODY_CHUNK`] pieces. The whole body is never
/// held in memory (a full snapshot of 200 × 600 samples is ~360 MB), and
/// the client gets its first bytes while the rest is being written.
///
/// The body holds a `permit` of the snapshot limit until it is over (sent,
/// or the connection dropped, e.g. by the write timeout, or cut for a new
/// request, [`slots`]).
fn snapshot_response(
    shared: &Arc<Shared>,
    counters: &Arc<HttpCounters>,
    (budget, capped): (Option<usize>, bool),
    permit: Slot,
) -> warp::reply::Response {
    let refs = capture(shared, counters, &shared.lock());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    let counters = counters.clone();
    tokio::task::spawn_blocking(move || {
        let trimmed = json::write_snapshot(&refs, budget, BODY_CHUNK, &mut |piece| {
            tx.blocking_send(bytes::Bytes::from(piece)).is_ok()
        });
        counters.count_trimmed(capped && trimmed);
    });
    let mut permit = Some(permit);
    let body = futures_util::stream::poll_fn(move |cx| {
        let next = rx.poll_recv(cx);
        if let std::task::Poll::Ready(None) = next {
            permit.take();
        }
        next.map(|piece| piece.map(Ok::<_, Infallible>))
    });
    let mut res = warp::reply::stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// `GET /metrics`: numbers copied under the state lock, text written after
/// it is released (see [`crate::api::metrics`]).
fn metrics_response(
    shared: &Shared,
    per_process: bool,
    clients: &AtomicUsize,
    counters: &HttpCounters,
    accept: Option<&str>,
) -> warp::reply::Response {
    let started = Instant::now();
    let own = crate::api::metrics::IngesterCounters {
        receive_pauses: shared.receive_pauses.load(Ordering::Relaxed),
        websocket_clients: clients.load(Ordering::Relaxed) as u64,
        ws_messages_dropped: shared.lagged.load(Ordering::Relaxed),
        http: counters.snapshot().map(|(_, v)| v),
    };
    let capture = crate::api::metrics::capture(&shared.lock(), per_process, own, started);
    let openmetrics = crate::api::metrics::wants_openmetrics(accept);
    let body =
        crate::api::metrics::render(capture, openmetrics, || started.elapsed().as_secs_f64());
    let ctype = if openmetrics {
        crate::api::metrics::OPENMETRICS
    } else {
        crate::api::metrics::PROMETHEUS_TEXT
    };
    Response::builder()
        .header(header::CONTENT_TYPE, ctype)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body.into())
        .unwrap_or_default()
}

/// All routes.
pub(crate) fn routes(
    shared: Arc<Shared>,
    cfg: HttpConfig,
    counters: Arc<HttpCounters>,
    shutdown: watch::Receiver<bool>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Infallible> + Clone + Send + Sync + 'static
{
    let clients = Arc::new(AtomicUsize::new(0));
    let snapshots = Arc::new(SnapshotSlots::new(
        cfg.max_state_responses,
        cfg.state_stall_timeout,
        counters.clone(),
    ));
    // Answers every request whose Host is not allowed; lets the others
    // through to the routes (by rejecting).
    let hosts = cfg.allowed_hosts.clone();
    let c = counters.clone();
    // Raw bytes: a Host that is not text is refused too, not skipped.
    let bad_host = warp::header::headers_cloned().and_then(move |h: header::HeaderMap| {
        let host = h
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let refused = (!hosts.allows(host.as_deref())).then(|| {
            c.host_refused.fetch_add(1, Ordering::Relaxed);
            misdirected(host.as_deref().unwrap_or(""))
        });
        async move { refused.ok_or_else(warp::reject::not_found) }
    });
    let with_shared = {
        let s = shared.clone();
        warp::any().map(move || s.clone())
    };
    let cfg2 = cfg.clone();
    let c = counters.clone();
    let index = warp::path::end()
        .and(warp::get().or(warp::head()).unify())
        .and(warp::header::optional::<String>("x-forwarded-prefix"))
        .map(move |prefix: Option<String>| {
            let prefix = prefix.unwrap_or_default();
            let base = if !cfg2.root_path.is_empty() {
                cfg2.root_path.clone()
            } else if guard::prefix_problem(&prefix).is_some() {
                // Would make the page load its script from elsewhere.
                c.prefix_refused.fetch_add(1, Ordering::Relaxed);
                String::new()
            } else {
                normalize_base(&prefix)
            };
            Response::builder()
                .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-store")
                .body(render_index(crate::api::ui_assets::INDEX_HTML, &base).into())
                .unwrap_or_default()
        });
    let statics = warp::path("static")
        .and(warp::path::tail())
        .and(warp::get())
        .map(|tail: warp::path::Tail| {
            let path = tail.as_str();
            let found = if path == "index.html" {
                Some((
                    crate::api::ui_assets::INDEX_HTML.as_bytes(),
                    "text/html; charset=utf-8",
                ))
            } else {
                crate::api::ui_assets::asset(path)
            };
            match found {
                Some((bytes, ctype)) => Response::builder()
                    .header(header::CONTENT_TYPE, ctype)
                    .body(bytes.to_vec().into())
                    .unwrap_or_default(),
                None => Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .body("not found\n".into())
                    .unwrap_or_default(),
            }
        });
    let default_budget = cfg.snapshot_budget;
    let state = warp::path!("api" / "state")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::ext::optional::<ConnHandle>())
        .and(with_shared.clone())
        .then({
            let counters = counters.clone();
            let snapshots = snapshots.clone();
            move |q: HashMap<String, String>, conn: Option<ConnHandle>, shared: Arc<Shared>| {
                let counters = counters.clone();
                let snapshots = snapshots.clone();
                async move {
                let budget = state_budget(&q, default_budget);
                match snapshots.acquire(conn, false).await {
                    Some(permit) => snapshot_response(&shared, &counters, budget, permit),
                    None => {
                        counters.state_refused.fetch_add(1, Ordering::Relaxed);
                        Response::builder()
                            .status(StatusCode::SERVICE_UNAVAILABLE)
                            .header(header::RETRY_AFTER, "1")
                            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                            .body("too many /api/state responses in progress (--max-state-responses)\n".into())
                            .unwrap_or_default()
                    }
                }
                }
            }
        });
    let clear = warp::path!("api" / "slow" / "clear")
        .and(warp::post())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("x-forwarded-host"))
        .and(with_shared.clone())
        .map(
            |origin: Option<String>,
             host: Option<String>,
             fwd: Option<String>,
             shared: Arc<Shared>| {
                if !same_origin(origin.as_deref(), host.as_deref(), fwd.as_deref()) {
                    return forbidden("cross-origin request refused");
                }
                let mut st = shared.lock();
                let kept = st.clear_slow(Instant::now());
                shared.slow_clears.fetch_add(1, Ordering::Relaxed);
                shared.publish(json::slow_clear_json(&kept));
                shared.batches.slow_clear(&kept);
                drop(st);
                json_response("{\"ok\": true}".into())
            },
        );
    let metrics = {
        let clients = clients.clone();
        let counters = counters.clone();
        let per_process = cfg.metrics_per_process;
        warp::path("metrics")
            .and(warp::path::end())
            .and(warp::get().or(warp::head()).unify())
            .and(warp::header::optional::<String>("accept"))
            .and(with_shared.clone())
            .map(move |accept: Option<String>, shared: Arc<Shared>| {
                metrics_response(&shared, per_process, &clients, &counters, accept.as_deref())
            })
    };
    let cfg3 = cfg.clone();
    // warp's `ws()` validates the handshake; the upgrade itself is ours
    // (taken before `ws()` removes it) so the first snapshot can be written
    // as a fragmented message, piece by piece, instead of one frame that
    // the WebSocket library would copy whole into its write buffer.
    let ws = warp::path("ws")
        .and(warp::path::end())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ext::optional::<ConnHandle>())
        .and(warp::ws())
        .and(warp::header::<String>("sec-websocket-key"))
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("x-forwarded-host"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with_shared)
        .map(
            move |upgrade: Option<OnUpgrade>,
                  conn: Option<ConnHandle>,
                  _validated: Ws,
                  key: String,
                  origin: Option<String>,
                  host: Option<String>,
                  fwd: Option<String>,
                  q: HashMap<String, String>,
                  shared: Arc<Shared>| {
                if !same_origin(origin.as_deref(), host.as_deref(), fwd.as_deref()) {
                    return forbidden("cross-origin WebSocket refused");
                }
                if clients.load(Ordering::SeqCst) >= cfg3.max_clients {
                    counters.ws_clients_refused.fetch_add(1, Ordering::Relaxed);
                    return Response::builder()
                        .status(StatusCode::SERVICE_UNAVAILABLE)
                        .body("too many WebSocket clients\n".into())
                        .unwrap_or_default();
                }
                let Some(upgrade) = upgrade else {
                    return Response::builder()
                        .status(StatusCode::BAD_REQUEST)
                        .body("cannot upgrade this connection\n".into())
                        .unwrap_or_default();
                };
                // `?batch=MS`: the UI's batched stream (crate::batch).
                let batch = match q
                    .get("batch")
                    .map(|v| crate::ingest::batch::parse_interval(v))
                {
                    None => None,
                    Some(Ok(iv)) => Some(iv),
                    Some(Err(why)) => {
                        return Response::builder()
                            .status(StatusCode::BAD_REQUEST)
                            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                            .header(header::CONNECTION, "close")
                            .body(format!("{why}\n").into())
                            .unwrap_or_default()
                    }
                };
                let budget = state_budget(&q, cfg3.snapshot_budget);
                let clients = clients.clone();
                clients.fetch_add(1, Ordering::SeqCst);
                let shutdown = shutdown.clone();
                let ctx = ClientCtx {
                    shared,
                    counters: counters.clone(),
                    snapshots: snapshots.clone(),
                    conn,
                    idle_timeout: cfg3.ws_idle_timeout,
                };
                tokio::spawn(async move {
                    match upgrade.await {
                        Ok(up) => {
                            let io = hyper_util::rt::TokioIo::new(up);
                            client(io, ctx, budget, batch, shutdown).await;
                        }
                        Err(e) => tracing::debug!("ws upgrade error: {e}"),
                    }
                    clients.fetch_sub(1, Ordering::SeqCst);
                });
                let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                    key.trim().as_bytes(),
                );
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::CONNECTION, "upgrade")
                    .header(header::UPGRADE, "websocket")
                    .header(header::SEC_WEBSOCKET_ACCEPT, accept)
                    .body(warp::reply::Response::default().into_body())
                    .unwrap_or_default()
            },
        );
    let history = crate::api::history::routes(shared.clone());
    let stats = crate::api::stats::routes(shared.clone());
    bad_host
        .or(index)
        .unify()
        .or(history)
        .unify()
        .or(stats)
        .unify()
        .or(statics)
        .unify()
        .or(state)
        .unify()
        .or(clear)
        .unify()
        .or(ws)
        .unify()
        .or(metrics)
        .unify()
        .recover(|_r: Rejection| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::NOT_FOUND)
                    .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body("not found\n".into())
                    .unwrap_or_default(),
            )
        })
        .unify()
}

/// Writes one WebSocket frame header (server side: unmasked).
fn frame_header(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
    let mut h = Vec::with_capacity(10);
    h.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        h.push(len as u8);
    } else if len <= u16::MAX as usize {
        h.push(126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h
}

/// Sends the first snapshot as one text message of several frames (a text
/// frame, then continuations), each a piece written by a blocking thread:
/// the whole message is never held in memory.
async fn send_snapshot<IO: AsyncWrite + Unpin>(
    io: &mut IO,
    refs: json::SnapshotRefs,
    (budget, capped): (Option<usize>, bool),
    counters: &Arc<HttpCounters>,
) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let counters = counters.clone();
    tokio::task::spawn_blocking(move || {
        let trimmed = json::write_snapshot(&refs, budget, BODY_CHUNK, &mut |piece| {
            tx.blocking_send(piece).is_ok()
        });
        counters.count_trimmed(capped && trimmed);
    });
    let mut opcode = 0x1; // text, then continuation (0x0)
    let mut piece = rx.recv().await.unwrap_or_default();
    loop {
        // One piece of look-ahead: the last frame carries FIN.
        let next = rx.recv().await;
        io.write_all(&frame_header(next.is_none(), opcode, piece.len()))
            .await?;
        io.write_all(&piece).await?;
        opcode = 0x0;
        match next {
            Some(p) => piece = p,
            None => break,
        }
    }
    io.flush().await
}

/// What a WebSocket client's task needs from the server.
struct ClientCtx {
    shared: Arc<Shared>,
    counters: Arc<HttpCounters>,
    snapshots: Arc<SnapshotSlots>,
    /// Its connection, for the snapshot places (cut if its first snapshot
    /// stalls while others wait).
    conn: Option<ConnHandle>,
    idle_timeout: Duration,
}

impl ClientCtx {
    /// Counts a client dropped because it stopped reading: its writes
    /// stalled for `--write-timeout` (in the listener), or it left a ping
    /// unanswered for `--idle-timeout`.
    fn gone(&self, e: &dyn std::fmt::Display, timed_out: bool) {
        if timed_out {
            self.counters
                .ws_clients_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!("ws client gone: {e}");
    }
}

async fn client<IO>(
    mut io: IO,
    ctx: ClientCtx,
    budget: (Option<usize>, bool),
    batch: Option<Duration>,
    mut shutdown: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    let shared = &ctx.shared;
    // The first snapshot waits its turn among the snapshots in progress.
    let Some(permit) = ctx.snapshots.acquire(ctx.conn.clone(), true).await else {
        return;
    };
    // Subscribe and capture under the same lock: the client then sees
    // exactly the messages that follow its snapshot (a batched client:
    // the frames from `batch_seq` on).
    let (mut sub, refs, mut clears_seen) = {
        let st = shared.lock();
        let clears = shared.slow_clears.load(Ordering::Relaxed);
        match batch {
            None => (
                shared.tx.subscribe(),
                capture(shared, &ctx.counters, &st),
                clears,
            ),
            Some(interval) => {
                let (sub, first) = shared.batches.subscribe(interval);
                let mut refs = capture(shared, &ctx.counters, &st);
                refs.extra.push(("batch_seq", first));
                (sub, refs, clears)
            }
        }
    };
    let sent = send_snapshot(&mut io, refs, budget, &ctx.counters).await;
    drop(permit);
    if let Err(e) = sent {
        ctx.gone(&e, e.kind() == std::io::ErrorKind::TimedOut);
        return;
    }
    let config = WebSocketConfig::default().max_message_size(Some(1 << 20));
    let socket =
        tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut tx, mut rx) = socket.split();
    let every = (ctx.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut ping = tokio::time::interval(every);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = sub.recv() => match m {
                Ok(msg) => {
                    if let Err(e) = tx.send(Message::text(&*msg)).await {
                        ctx.gone(&e, timed_out(&e));
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    shared.lagged.fetch_add(n, Ordering::Relaxed);
                    if batch.is_some() {
                        // A missed frame cannot be made up: the client
                        // reconnects and starts again from a snapshot.
                        let close = CloseFrame { code: CloseCode::Again, reason: "fell behind the batched stream".into() };
                        let _ = tx.send(Message::Close(Some(close))).await;
                        break;
                    }
                    if shared.slow_clears.load(Ordering::Relaxed) != clears_seen {
                        let (resync, clears) = resync_slow(shared, &mut sub);
                        clears_seen = clears;
                        if let Err(e) = tx.send(Message::text(resync)).await {
                            ctx.gone(&e, timed_out(&e));
                            break;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            incoming = rx.next() => match incoming {
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(_)) => heard = tokio::time::Instant::now(),
                Some(Err(e)) => {
                    tracing::debug!("ws client error: {e}");
                    break;
                }
                None => break,
            },
            _ = ping.tick() => {
                if heard.elapsed() > ctx.idle_timeout {
                    ctx.gone(&"no answer to pings (--idle-timeout)", true);
                    break;
                }
                if let Err(e) = tx.send(Message::Ping(Default::default())).await {
                    ctx.gone(&e, timed_out(&e));
                    break;
                }
            }
            _ = shutdown.changed() => {
                let close = CloseFrame { code: CloseCode::Away, reason: "server shutdown".into() };
                let _ = tx.send(Message::Close(Some(close))).await;
                break;
            }
        }
    }
    let _ = tx.close().await;
}

/// After a lag that may have cost a client a `slow_clear`: the server's
/// slow list as a `slow_clear` (a client replaces its list with `kept`), and
/// a new subscription taken under the same lock, so what follows it is
/// exactly what changed since. The messages still queued for the old one
/// are older than the list and count as dropped.
fn resync_slow(shared: &Shared, sub: &mut broadcast::Receiver<Msg>) -> (String, u64) {
    let st = shared.lock();
    shared.lagged.fetch_add(sub.len() as u64, Ordering::Relaxed);
    *sub = shared.tx.subscribe();
    let clears = shared.slow_clears.load(Ordering::Relaxed);
    (json::slow_clear_json(&st.slow_records()), clears)
}

fn timed_out(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    matches!(e, tokio_tungstenite::tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests;
