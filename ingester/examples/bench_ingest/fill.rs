//! Fill: N processes × the rolling window of REQUEST samples, then
//! `GET /api/state` and the first WebSocket message, with the probe stream
//! running meanwhile.

use crate::corpus::{patch_header, Corpus, Tmpl};
use crate::http::http_get;
use crate::send::{Probe, Sender, Sent};
use crate::server::{count, find_last, Counters, Impl, Server};
use crate::system::{clk_tck, status_kb};
use crate::{FILL_WINDOW, PID_BASE, WINDOW};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::wall_now;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use wire::Kind;

// ---------------------------------------------------------------- fill

pub(crate) struct Api {
    pub(crate) secs: f64,
    pub(crate) ttfb: f64,
    pub(crate) bytes: u64,
    pub(crate) processes: Option<u64>,
    pub(crate) total_received: u64,
    pub(crate) probe: Sent,
}

pub(crate) struct Ws {
    pub(crate) label: String,
    pub(crate) secs: f64,
    pub(crate) handshake: f64,
    pub(crate) bytes: u64,
    pub(crate) processes: u64,
    pub(crate) truncated: Option<bool>,
    pub(crate) probe: Sent,
}

pub(crate) struct Fill {
    pub(crate) imp: Impl,
    pub(crate) procs: usize,
    pub(crate) datagrams: u64,
    pub(crate) fill_secs: f64,
    pub(crate) fill_cpu_s: f64,
    pub(crate) received: u64,
    pub(crate) queue_overflow: Option<u64>,
    pub(crate) rss_fill_kb: u64,
    pub(crate) hwm_fill_kb: u64,
    pub(crate) api: Option<Api>,
    pub(crate) ws: Vec<Ws>,
    pub(crate) hwm_end_kb: u64,
    pub(crate) error: Option<String>,
}

pub(crate) fn run_fill(
    imp: Impl,
    bin: &Path,
    corpus: &Corpus,
    procs: usize,
    ws_paths: &[(&str, &str)],
    rt: &tokio::runtime::Runtime,
) -> Fill {
    let mut f = Fill {
        imp,
        procs,
        datagrams: 0,
        fill_secs: 0.0,
        fill_cpu_s: 0.0,
        received: 0,
        queue_overflow: None,
        rss_fill_kb: 0,
        hwm_fill_kb: 0,
        api: None,
        ws: Vec::new(),
        hwm_end_kb: 0,
        error: None,
    };
    if let Err(e) = fill_inner(&mut f, bin, corpus, ws_paths, rt) {
        progress!("{} fill {procs}: aborted: {e:#}", imp.name());
        f.error = Some(format!("{e:#}"));
    }
    f
}

pub(crate) fn fill_inner(
    f: &mut Fill,
    bin: &Path,
    corpus: &Corpus,
    ws_paths: &[(&str, &str)],
    rt: &tokio::runtime::Runtime,
) -> Result<()> {
    // Fills run without --state-dir.
    let imp = match f.imp {
        Impl::OursStateDir => Impl::Ours,
        imp => imp,
    };
    let srv = Server::start(bin, false, imp)?;
    let tx = Sender::connect(&srv.sock)?;
    let requests: Vec<&Tmpl> = corpus
        .all
        .iter()
        .filter(|t| t.kind == Kind::REQUEST.0)
        .collect();
    let probe_tmpl = corpus
        .all
        .iter()
        .find(|t| t.kind == Kind::SLOW_REQUEST.0)
        .map(|t| t.bytes.clone())
        .context("no slow_request in corpus")?;
    let base_stamp = wall_now() - WINDOW as f64;
    let mut buf = Vec::with_capacity(wire::MAX_DATAGRAM);
    let cpu0 = srv.cpu();
    let t0 = Instant::now();
    let mut last_note = Instant::now();
    for r in 0..WINDOW {
        for p in 0..f.procs {
            let t = requests[(r * f.procs + p) % requests.len()];
            buf.clear();
            buf.extend_from_slice(&t.bytes);
            patch_header(
                &mut buf,
                PID_BASE + p as u32,
                r as u32 + 1,
                base_stamp + r as f64,
            );
            tx.send(&buf, false)?;
            f.datagrams += 1;
            // Ours stops reading once its in-process queue holds 64 MB
            // (`ingest/receive.rs` MAX_QUEUED_BYTES), so a blocking sender waits and
            // nothing is lost; the window only keeps the queue short, as
            // in the runs before that back-pressure existed (the figures
            // stay comparable).
            if f.imp == Impl::Ours && f.datagrams.is_multiple_of(10_000) {
                while f.datagrams - srv.counters()?.total_received > FILL_WINDOW {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        if last_note.elapsed() > Duration::from_secs(10) {
            last_note = Instant::now();
            progress!(
                "{} fill {}: {} of {} sent",
                f.imp.name(),
                f.procs,
                f.datagrams,
                WINDOW * f.procs
            );
        }
    }
    srv.wait_idle(Duration::from_secs(120));
    f.fill_secs = t0.elapsed().as_secs_f64();
    f.fill_cpu_s = (srv.cpu() - cpu0) as f64 / clk_tck();
    f.rss_fill_kb = status_kb(srv.pid, "VmRSS:");
    f.hwm_fill_kb = status_kb(srv.pid, "VmHWM:");
    progress!(
        "{} fill {} × {}: {} datagrams in {:.1} s ({:.0}/s), CPU {:.1} s, RSS {} MB (peak {} MB)",
        f.imp.name(),
        f.procs,
        WINDOW,
        f.datagrams,
        f.fill_secs,
        f.datagrams as f64 / f.fill_secs,
        f.fill_cpu_s,
        f.rss_fill_kb / 1024,
        f.hwm_fill_kb / 1024
    );

    // GET /api/state (everything).
    let probe = Probe::start(&srv.sock, &probe_tmpl)?;
    let r = http_get(srv.port, "/api/state", 1 << 30);
    let probe = probe.finish();
    let r = r?;
    if r.status != 200 {
        bail!("/api/state answered {}", r.status);
    }
    let c = Counters::parse(&r.tail);
    f.received = c.total_received;
    f.queue_overflow = c.queue_overflow;
    let api = Api {
        secs: r.total.as_secs_f64(),
        ttfb: r.ttfb.as_secs_f64(),
        bytes: r.body_bytes,
        processes: r.body.as_deref().map(|b| count(b, b"\"last_seq\"")),
        total_received: c.total_received,
        probe,
    };
    progress!(
        "{} {} procs: GET /api/state {:.3} s (first byte {:.3} s), {} bytes, {} processes, total_received {}; probe refused {}/{}",
        f.imp.name(),
        f.procs,
        api.secs,
        api.ttfb,
        api.bytes,
        api.processes.map(|p| p.to_string()).unwrap_or("(not counted)".into()),
        api.total_received,
        api.probe.refused,
        api.probe.attempted
    );
    drop(r);
    f.api = Some(api);
    if f.received < f.datagrams {
        progress!(
            "{} fill {}: WARNING only {} of {} datagrams received",
            f.imp.name(),
            f.procs,
            f.received,
            f.datagrams
        );
    }

    for (label, path) in ws_paths {
        srv.wait_idle(Duration::from_secs(30));
        let url = format!("ws://127.0.0.1:{}{}", srv.port, path);
        let probe = Probe::start(&srv.sock, &probe_tmpl)?;
        let res = rt.block_on(ws_first(&url));
        let probe = probe.finish();
        let (secs, handshake, text) = res?;
        let w = Ws {
            label: label.to_string(),
            secs,
            handshake,
            bytes: text.len() as u64,
            processes: count(text.as_bytes(), b"\"last_seq\""),
            truncated: find_last(text.as_bytes(), b"\"history_truncated\"").map(|i| {
                text.as_bytes()[i..]
                    .iter()
                    .take(30)
                    .copied()
                    .collect::<Vec<u8>>()
                    .windows(4)
                    .any(|w| w == b"true")
            }),
            probe,
        };
        drop(text);
        progress!(
            "{} {} procs: WS {} first message {:.3} s (handshake {:.3} s), {} bytes, {} processes{}; probe refused {}/{}",
            f.imp.name(),
            f.procs,
            w.label,
            w.secs,
            w.handshake,
            w.bytes,
            w.processes,
            match w.truncated {
                Some(t) => format!(", history_truncated {t}"),
                None => String::new(),
            },
            w.probe.refused,
            w.probe.attempted
        );
        f.ws.push(w);
    }
    f.hwm_end_kb = status_kb(srv.pid, "VmHWM:");
    Ok(())
}

/// Connects and waits for the first text message: (seconds to it,
/// seconds to the upgrade, text).
pub(crate) async fn ws_first(url: &str) -> Result<(f64, f64, String)> {
    let cfg = WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None);
    let t0 = Instant::now();
    let fut = async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(url, Some(cfg), false).await?;
        let hs = t0.elapsed().as_secs_f64();
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let secs = t0.elapsed().as_secs_f64();
                    let _ = ws.close(None).await;
                    return Ok::<_, anyhow::Error>((secs, hs, t.as_str().to_owned()));
                }
                Some(Ok(Message::Binary(b))) => {
                    let secs = t0.elapsed().as_secs_f64();
                    let _ = ws.send(Message::Close(None)).await;
                    return Ok((secs, hs, String::from_utf8_lossy(&b).into_owned()));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before the first message"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), fut)
        .await
        .map_err(|_| anyhow!("no first message within 300 s"))?
}
