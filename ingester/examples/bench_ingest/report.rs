//! The report: Markdown tables of every figure and the ratios against the
//! targets, after a head that says what ran where.

use crate::corpus::Corpus;
use crate::fill::Fill;
use crate::ladder::Ladder;
use crate::opts::{saturation_step, Opts, RT};
use crate::server::Impl;
use crate::system::{loadavg, machine_facts};
use crate::{LADDER_PROCS, SENDER_CPU, SERVER_CPU};
use anyhow::Result;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;
use testkit::utc_now;

pub(crate) fn fmt_rate(r: f64) -> String {
    if r >= 1000.0 {
        format!("{:.0}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

pub(crate) fn mb(kb: u64) -> String {
    format!("{:.0} MB", kb as f64 / 1024.0)
}

pub(crate) fn bytes_h(b: u64) -> String {
    if b >= 10_000_000 {
        format!("{:.0} MB", b as f64 / 1e6)
    } else if b >= 1_000_000 {
        format!("{:.2} MB", b as f64 / 1e6)
    } else {
        format!("{:.0} kB", b as f64 / 1e3)
    }
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets target"
    } else {
        "MISSES target"
    }
}

/// The head of the report: the command line, the machine, how the run is
/// scheduled, the two binaries, the corpus and the ladder's steps (printed
/// at the start, and again at the top of the report).
pub(crate) fn head(
    opts: &Opts,
    corpus: &Corpus,
    cores: usize,
    pinned: bool,
    rates: &[u64],
    step: Duration,
) -> Result<String> {
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    let mut head = String::new();
    writeln!(head, "bench_ingest: {cmdline}")?;
    writeln!(head, "date: {}", utc_now())?;
    writeln!(head, "load average at start: {}", loadavg())?;
    writeln!(head, "machine: {}", machine_facts(cores))?;
    writeln!(
        head,
        "server pinned to core {SERVER_CPU}; sender{} ",
        if pinned {
            format!(" pinned to core {SENDER_CPU}")
        } else {
            " NOT pinned (single core?)".into()
        }
    )?;
    writeln!(
        head,
        "scheduling: {}",
        if RT.load(Ordering::Relaxed) {
            "--rt: during the ladders, servers, bare receiver and sender run SCHED_FIFO priority 1 (shielded from other tenants' load); fills and snapshots run SCHED_OTHER"
        } else {
            "SCHED_OTHER (shares the cores with whatever else runs on the machine)"
        }
    )?;
    writeln!(head, "ours: {}", opts.ours.display())?;
    match &opts.reference {
        Some(r) => writeln!(head, "reference: {}", r.display())?,
        None => writeln!(head, "reference: skipped")?,
    }
    writeln!(
        head,
        "corpus: {} datagrams of {} processes, capture span {:.0} s; field 8 dropped from {} GC datagrams (both implementations)",
        corpus.all.len(),
        corpus.n_orig,
        corpus.span,
        corpus.field8_dropped
    )?;
    writeln!(
        head,
        "ladder: {} s per step at {:?} datagrams/s; a lossy step is repeated once, the ladder stops when it loses again",
        step.as_secs(),
        rates
    )?;
    Ok(head)
}

/// The whole report: the head, the ladders and saturation, the fills, the
/// ratios against the targets.
pub(crate) fn report(
    head: &str,
    opts: &Opts,
    rates: &[u64],
    step: Duration,
    ladders: &[Ladder],
    fills: &[Fill],
) -> Result<String> {
    let mut out = String::new();
    out.push_str(head);
    writeln!(out, "load average at end: {}", loadavg())?;
    writeln!(out, "finished: {}", utc_now())?;
    writeln!(out)?;
    ladder_tables(&mut out, ladders, rates, step)?;
    fill_tables(&mut out, opts, fills)?;
    ratios(&mut out, opts, ladders, fills)?;
    Ok(out)
}

/// Sustained zero-loss rate per ladder, saturation, and every step.
fn ladder_tables(
    out: &mut String,
    ladders: &[Ladder],
    rates: &[u64],
    step: Duration,
) -> Result<()> {
    writeln!(out, "### Sustained zero-loss rate (server on one core)")?;
    writeln!(out)?;
    writeln!(
        out,
        "| pacing | impl | processes | highest zero-loss step (achieved/s) | CPU-s per 10k there | first lossy step: loss | steps run |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---|---:|")?;
    for l in ladders {
        let best = l.best();
        let lossy = if l.topped {
            "none (top of ladder)".to_string()
        } else if let Some(s) = l.first_lossy() {
            format!(
                "{}/s: {} of {} ({:.1}%)",
                fmt_rate(s.rate as f64),
                s.loss(),
                s.sent.attempted,
                100.0 * s.loss() as f64 / s.sent.attempted.max(1) as f64
            )
        } else {
            l.error.clone().unwrap_or_default()
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            l.pacing.name(),
            l.imp.name(),
            l.procs,
            best.map(|s| format!(
                "{}/s ({:.0}/s{})",
                fmt_rate(s.rate as f64),
                s.achieved(),
                if s.sender_limited() {
                    ", sender-limited"
                } else {
                    ""
                }
            ))
            .unwrap_or_else(|| format!(
                "< {}/s",
                rates
                    .first()
                    .map(|&r| fmt_rate(r as f64))
                    .unwrap_or_default()
            )),
            best.map(|s| format!("{:.3}", s.cpu_per_10k()))
                .unwrap_or("-".into()),
            lossy,
            l.steps.len()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Saturation (blocking sends for {} s: the server never waits for a datagram, so neither wake-up latency nor the 10-deep kernel queue limits it; lossless by construction, except for ours' in-process queue bound):",
        saturation_step(step).as_secs()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| impl | processes | datagrams/s drained | sent | received | CPU-s per 10k |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for l in ladders {
        if let Some(s) = &l.sat {
            writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {:.3} |",
                l.imp.name(),
                l.procs,
                s.rate(),
                s.sent,
                s.received,
                s.cpu_per_10k()
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "Every step:")?;
    writeln!(out)?;
    writeln!(
        out,
        "| impl | procs | rate | sent | achieved/s | refused (EAGAIN) | received | loss | CPU-s | CPU-s/10k | recv-thread run-queue wait ms (slices) | all threads ms |"
    )?;
    writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    for l in ladders {
        for s in &l.steps {
            writeln!(
                out,
                "| {} | {} | {} | {}{} | {} | {:.0} | {} | {} | {} | {:.2} | {:.3} | {:.1} ({}) | {:.1} |",
                l.pacing.name(),
                l.imp.name(),
                l.procs,
                fmt_rate(s.rate as f64),
                if s.repeat { " (repeat)" } else { "" },
                s.sent.attempted,
                s.achieved(),
                s.sent.refused,
                s.received,
                s.loss(),
                s.cpu_s,
                s.cpu_per_10k(),
                s.wait_recv_ms,
                s.recv_slices,
                s.wait_all_ms
            )?;
        }
    }
    Ok(())
}

/// Fill: rate, RSS, `/api/state` and the first WebSocket message.
fn fill_tables(out: &mut String, opts: &Opts, fills: &[Fill]) -> Result<()> {
    writeln!(out)?;
    writeln!(out, "### Fill: N processes × 600 REQUEST samples")?;
    writeln!(out)?;
    writeln!(
        out,
        "| impl | processes | fill rate (blocking sends; ours ≤ 40k in flight) | CPU-s/10k in fill | RSS after fill | peak RSS (VmHWM, end) | /api/state time (first byte) | /api/state bytes | probe refused during /api/state |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    for f in fills {
        if let Some(e) = &f.error {
            writeln!(
                out,
                "| {} | {} | error: {} |",
                f.imp.name(),
                f.procs,
                e.lines().next().unwrap_or("")
            )?;
            if f.api.is_none() {
                continue;
            }
        }
        let api = f.api.as_ref();
        writeln!(
            out,
            "| {} | {} | {:.0}/s | {:.3} | {} | {} | {} | {} | {} |",
            f.imp.name(),
            f.procs,
            f.datagrams as f64 / f.fill_secs.max(1e-9),
            f.fill_cpu_s / f.datagrams.max(1) as f64 * 10_000.0,
            mb(f.rss_fill_kb),
            mb(f.hwm_end_kb.max(f.hwm_fill_kb)),
            api.map(|a| format!("{:.3} s ({:.3} s)", a.secs, a.ttfb))
                .unwrap_or("-".into()),
            api.map(|a| bytes_h(a.bytes)).unwrap_or("-".into()),
            api.map(|a| format!("{} of {}", a.probe.refused, a.probe.attempted))
                .unwrap_or("-".into()),
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "| impl | processes | first WebSocket message | time to it (upgrade) | bytes | processes in it | history_truncated | probe refused meanwhile |"
    )?;
    writeln!(out, "|---|---:|---|---:|---:|---:|---|---:|")?;
    for f in fills {
        for w in &f.ws {
            writeln!(
                out,
                "| {} | {} | {} | {:.3} s ({:.3} s) | {} | {} | {} | {} of {} |",
                f.imp.name(),
                f.procs,
                w.label,
                w.secs,
                w.handshake,
                bytes_h(w.bytes),
                w.processes,
                w.truncated
                    .map(|t| t.to_string())
                    .unwrap_or("(no such key)".into()),
                w.probe.refused,
                w.probe.attempted
            )?;
        }
    }
    for f in fills {
        if f.received != f.datagrams && f.api.is_some() {
            writeln!(
                out,
                "\nnote: {} fill {}: {} datagrams sent, total_received {} (queue_overflow {:?})",
                f.imp.name(),
                f.procs,
                f.datagrams,
                f.received,
                f.queue_overflow
            )?;
        }
    }
    if opts.reference.is_some() {
        writeln!(
            out,
            "\nThe reference is filled with 200 processes only: 1,000 × 600 samples would need more than 10 GB of RSS."
        )?;
    }
    Ok(())
}

/// Ratios of ours to the reference against the targets.
fn ratios(out: &mut String, opts: &Opts, ladders: &[Ladder], fills: &[Fill]) -> Result<()> {
    if opts.state_dir {
        state_dir_ratios(out, opts, ladders)?;
    }
    writeln!(out)?;
    writeln!(out, "### Ratios against the targets (issue 2)")?;
    writeln!(out)?;
    if opts.reference.is_none() {
        writeln!(out, "(reference skipped: no ratios)")?;
    } else {
        for (&pacing, &n) in opts
            .pacings
            .iter()
            .flat_map(|p| LADDER_PROCS.iter().map(move |n| (p, n)))
        {
            let pn = pacing.name();
            let o = ladders
                .iter()
                .find(|l| l.imp == Impl::Ours && l.procs == n && l.pacing == pacing);
            let r = ladders
                .iter()
                .find(|l| l.imp == Impl::Reference && l.procs == n && l.pacing == pacing);
            if let (Some(o), Some(r)) = (o, r) {
                let orate = o.best().map(|s| s.achieved());
                let rrate = r.best().map(|s| s.achieved());
                match (orate, rrate) {
                    (Some(a), Some(b)) => {
                        let x = a / b;
                        writeln!(
                            out,
                            "- sustained zero-loss rate ({pn}), {n} processes: ours {:.0}/s{} vs reference {:.0}/s = {:.1}× (target ≥ 20×: {}); CPU per 10k: ours {:.3} s vs {:.3} s = 1/{:.0}",
                            a,
                            if o.topped { " (top of ladder, a lower bound)" } else { "" },
                            b,
                            x,
                            verdict(x >= 20.0),
                            o.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN),
                            r.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN),
                            r.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN)
                                / o.best().map(|s| s.cpu_per_10k()).unwrap_or(f64::NAN)
                        )?;
                    }
                    _ => writeln!(
                        out,
                        "- sustained zero-loss rate ({pn}), {n} processes: ours {} vs reference {} (no ratio; compare the bare-recv floor: on a loaded core even a bare recv loop loses)",
                        orate.map(|r| format!("{r:.0}/s")).unwrap_or("no zero-loss step".into()),
                        rrate.map(|r| format!("{r:.0}/s")).unwrap_or("no zero-loss step".into()),
                    )?,
                }
            }
        }
        for &n in &LADDER_PROCS {
            let sat = |imp: Impl| {
                ladders
                    .iter()
                    .find(|l| l.imp == imp && l.procs == n && l.sat.is_some())
                    .and_then(|l| l.sat)
            };
            if let (Some(o), Some(r)) = (sat(Impl::Ours), sat(Impl::Reference)) {
                let x = o.rate() / r.rate();
                writeln!(
                    out,
                    "- saturation throughput (blocking sends), {n} processes: ours {:.0}/s vs reference {:.0}/s = {:.1}× (target ≥ 20×: {}); CPU per 10k {:.3} s vs {:.3} s = 1/{:.1}",
                    o.rate(),
                    r.rate(),
                    x,
                    verdict(x >= 20.0),
                    o.cpu_per_10k(),
                    r.cpu_per_10k(),
                    r.cpu_per_10k() / o.cpu_per_10k()
                )?;
            }
        }
        let o = fills.iter().find(|f| f.imp == Impl::Ours && f.procs == 200);
        let r = fills.iter().find(|f| f.imp == Impl::Reference);
        if let (Some(o), Some(r)) = (o, r) {
            let (oh, rh) = (
                o.hwm_end_kb.max(o.hwm_fill_kb),
                r.hwm_end_kb.max(r.hwm_fill_kb),
            );
            if rh > 0 {
                writeln!(
                    out,
                    "- peak RSS at 200 × 600: ours {} vs reference {} = 1/{:.1} (target ≤ 1/5: {}); after the fill alone {} vs {} = 1/{:.1}",
                    mb(oh),
                    mb(rh),
                    rh as f64 / oh.max(1) as f64,
                    verdict(oh * 5 <= rh),
                    mb(o.rss_fill_kb),
                    mb(r.rss_fill_kb),
                    r.rss_fill_kb as f64 / o.rss_fill_kb.max(1) as f64
                )?;
            }
            if let Some(rw) = r.ws.first() {
                for w in &o.ws {
                    let x = w.secs / rw.secs;
                    writeln!(
                        out,
                        "- first WebSocket snapshot at 200 × 600: ours {} {:.3} s vs reference {:.3} s = 1/{:.0} (target ≤ 1/10: {})",
                        w.label,
                        w.secs,
                        rw.secs,
                        1.0 / x,
                        verdict(x <= 0.1)
                    )?;
                }
            }
            if let (Some(oa), Some(ra)) = (&o.api, &r.api) {
                let x = oa.secs / ra.secs;
                writeln!(
                    out,
                    "- GET /api/state at 200 × 600: ours {:.3} s vs reference {:.3} s = 1/{:.0} (target ≤ 1/10: {}); bytes {} vs {}",
                    oa.secs,
                    ra.secs,
                    1.0 / x,
                    verdict(x <= 0.1),
                    bytes_h(oa.bytes),
                    bytes_h(ra.bytes)
                )?;
            }
        }
    }
    Ok(())
}

/// Ours with `--state-dir` against ours without, same run (issue 21: the
/// history's writes must not lower the ingest ceiling by more than 10 %).
fn state_dir_ratios(out: &mut String, opts: &Opts, ladders: &[Ladder]) -> Result<()> {
    writeln!(out)?;
    writeln!(out, "### With --state-dir against without (issue 21)")?;
    writeln!(out)?;
    let find = |imp: Impl, n: usize, pacing| {
        ladders
            .iter()
            .find(|l| l.imp == imp && l.procs == n && l.pacing == pacing)
    };
    for (&pacing, &n) in opts
        .pacings
        .iter()
        .flat_map(|p| LADDER_PROCS.iter().map(move |n| (p, n)))
    {
        let (Some(a), Some(b)) = (
            find(Impl::Ours, n, pacing),
            find(Impl::OursStateDir, n, pacing),
        ) else {
            continue;
        };
        if let (Some(x), Some(y)) = (a.best(), b.best()) {
            writeln!(
                out,
                "- sustained zero-loss rate ({}), {n} processes: {:.0}/s with vs {:.0}/s without = {:.2} (target ≥ 0.90: {}); CPU per 10k {:.3} s vs {:.3} s",
                pacing.name(),
                y.achieved(),
                x.achieved(),
                y.achieved() / x.achieved(),
                verdict(y.achieved() >= 0.9 * x.achieved()),
                y.cpu_per_10k(),
                x.cpu_per_10k()
            )?;
        }
        if let (Some(x), Some(y)) = (a.sat, b.sat) {
            writeln!(
                out,
                "- saturation throughput, {n} processes: {:.0}/s with vs {:.0}/s without = {:.2} (target ≥ 0.90: {}); CPU per 10k {:.3} s vs {:.3} s",
                y.rate(),
                x.rate(),
                y.rate() / x.rate(),
                verdict(y.rate() >= 0.9 * x.rate()),
                y.cpu_per_10k(),
                x.cpu_per_10k()
            )?;
        }
    }
    Ok(())
}
