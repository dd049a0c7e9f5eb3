//! WebSocket client of `top`: a background thread with its own small tokio
//! runtime that connects to `serve`, parses every message off the UI thread
//! and hands the results over a channel. Reconnects forever with backoff
//! (1 s doubling to 10 s, reset after a successful connection). It never
//! touches the terminal.

use super::model::{parse_message, Message};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Snapshots of a busy server are several megabytes; allow plenty.
const MAX_MESSAGE: usize = 512 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(30);

/// What the client reports to the UI.
#[derive(Debug)]
pub enum Event {
    Connected,
    Message(Box<Message>),
    /// A frame that was not a usable message (counted, logged).
    BadMessage(String),
    Disconnected {
        error: String,
        retry_in: f64,
    },
    /// SIGINT, SIGTERM or SIGHUP.
    Quit,
}

/// Handle to the client thread; dropping it stops the thread.
pub struct Client {
    pub events: mpsc::Receiver<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the client for `url`. With `signals`, SIGINT/SIGTERM/SIGHUP are
/// turned into [`Event::Quit`] (the terminal UI needs to restore the screen).
pub fn spawn(url: String, signals: bool) -> anyhow::Result<Client> {
    let (tx, rx) = mpsc::channel();
    if signals {
        spawn_signal_watch(tx.clone());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = std::thread::Builder::new()
        .name("top-ws".into())
        .spawn(move || rt.block_on(run(url, tx, stop2)))?;
    Ok(Client {
        events: rx,
        stop,
        thread: Some(thread),
    })
}

/// How long the UI gets to quit on a signal before the process exits anyway.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// The last quit signal received (0 = none), set by an async-signal-safe
/// handler.
static QUIT_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_quit_signal(signo: libc::c_int) {
    QUIT_SIGNAL.store(signo, Ordering::SeqCst);
}

/// Watches for SIGINT/SIGTERM/SIGHUP on a thread of its own, so that a busy
/// WebSocket runtime (e.g. parsing a large snapshot) cannot delay quitting.
fn spawn_signal_watch(tx: mpsc::Sender<Event>) {
    for signo in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: installs a handler that only stores into an atomic, which
        // is async-signal-safe; the sigaction struct is fully initialised.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_quit_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(signo, &sa, std::ptr::null_mut());
        }
    }
    let _ = std::thread::Builder::new()
        .name("top-signals".into())
        .spawn(move || loop {
            let signo = QUIT_SIGNAL.load(Ordering::SeqCst);
            if signo != 0 {
                let _ = tx.send(Event::Quit);
                // A hung-up terminal makes crossterm's input read spin on EOF
                // without returning to the UI loop, so the quit event may never
                // be seen: do not outlive the terminal.
                std::thread::sleep(QUIT_GRACE);
                tracing::debug!("UI did not quit after signal {signo}; exiting");
                ratatui::restore();
                std::process::exit(128 + signo);
            }
            std::thread::sleep(Duration::from_millis(20));
        });
}

async fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let s = left.min(step);
        tokio::time::sleep(s).await;
        left -= s;
    }
}

async fn wait_stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(url: String, tx: mpsc::Sender<Event>, stop: Arc<AtomicBool>) {
    let mut backoff = 1.0f64;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    while !stop.load(Ordering::SeqCst) {
        let attempt = tokio::select! {
            a = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false),
            ) => a,
            // Stopping must not wait for a slow connect (e.g. `--once`).
            _ = wait_stopped(&stop) => return,
        };
        let error = match attempt {
            Err(_) => "connect timed out".to_string(),
            Ok(Err(e)) => e.to_string(),
            Ok(Ok((ws, _))) => {
                backoff = 1.0;
                tracing::debug!("connected to {url}");
                if tx.send(Event::Connected).is_err() {
                    return;
                }
                match pump(ws, &tx, &stop).await {
                    Ok(()) => return,
                    Err(e) => e,
                }
            }
        };
        tracing::debug!("connection to {url}: {error}");
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if tx
            .send(Event::Disconnected {
                error,
                retry_in: backoff,
            })
            .is_err()
        {
            return;
        }
        sleep_unless_stopped(Duration::from_secs_f64(backoff), &stop).await;
        backoff = (backoff * 2.0).min(10.0);
    }
}

/// Reads messages until the connection ends (`Err` with the reason) or the
/// client is stopped (`Ok`).
async fn pump<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    tx: &mpsc::Sender<Event>,
    stop: &AtomicBool,
) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut last_ping = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = ws.next() => {
                let ev = match m {
                    None => return Err("connection closed".into()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(WsMessage::Text(t))) => match parse_message(t.as_str()) {
                        Ok(msg) => Event::Message(Box::new(msg)),
                        Err(e) => Event::BadMessage(e.to_string()),
                    },
                    Some(Ok(WsMessage::Close(c))) => {
                        let why = c.map(|c| format!("closed by server: {} {}", u16::from(c.code), c.reason))
                            .unwrap_or_else(|| "closed by server".into());
                        return Err(why);
                    }
                    Some(Ok(_)) => continue,
                };
                if tx.send(ev).is_err() {
                    return Ok(());
                }
            }
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
                if last_ping.elapsed() >= HEARTBEAT {
                    last_ping = tokio::time::Instant::now();
                    if let Err(e) = ws.send(WsMessage::Ping(Vec::new().into())).await {
                        return Err(e.to_string());
                    }
                }
            }
        }
    }
}
