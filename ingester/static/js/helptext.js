// The reference text shown by the "?" button (Markdown, rendered by help.js).

/** Status-row label of `gc_dropped_events` (GC tab): collection events the
 * reporter dropped because more than its ring of 256 per interpreter were
 * waiting (64 are sent per tick; the rest wait, they are not dropped). */
export const GC_DROPPED_LABEL = 'GC events lost (over 256 waiting)';

export const HELP_MD = `## What this page shows

Live telemetry sent by mod_wsgi's reporter threads (one per Apache child or daemon process) over a **UNIX datagram socket** to this ingester, once per \`WSGITelemetryService ... interval=\` (1 s by default). All statistics are computed in the browser from the raw per-process samples.

- **Time** is the reporters' clock: every window ends at the newest sample stamp received, so a wrong browser clock cannot hide data. "no data for N s" in the top bar means nothing has arrived for a while.
- **Live processes**: a process leaves the live views (sidebar, charts, heatmaps, GC) when it has sent no sample for max(10 s, 3 intervals), or 10 s after its \`process_stopped\`. It stays in the **Processes** tab history.
- **Means** of per-request times are request-weighted (idle ticks do not pull them down); utilisations are time-weighted.
- **Ingester health** (sidebar): datagrams received, decode errors, and datagrams lost (gaps in the per-process sequence numbers).

## Tabs

- **Overview**: throughput (requests, body bytes, 4xx/5xx rates), capacity utilisation, CPU (cores), response time, RSS and a per-phase mean, one line per process. Vertical markers are process restarts (\`process_stopping\`), coloured by category. The **Time distribution** is the 65-bucket histogram summed over the chosen window with interpolated p50/p95/p99; min and max are exact.
- **Capacity**: one heatmap per process, one row per worker thread (slot); cell colour is the busy fraction of that slot in that tick, from dark (idle) through green and amber to red (fully busy). **Red bars** are slow requests: runs of ticks in which a slot's current request ran longer than the selected threshold. A white square marks a run backed by a slow-request record; click a run for details. Runs without a record show **no record** (heuristic detection only).
- **Processes**: lifetimes from STARTED to STOPPED; the dark tick is STOPPING. Colour by shutdown category once stopped. The event log lists every lifecycle event; click a bar or a row to find the other.
- **GC**: per process and interpreter: collections per second by generation, time spent in collections (overhead), every collection as a dot (duration), the pause distribution and how close each generation is to its threshold. The reporter sends up to 64 collection events per interpreter per tick; the rest wait for the next tick. Only when more than 256 are waiting are the oldest dropped, counted in the status row's "${GC_DROPPED_LABEL}".
- **Slow requests**: records sent for requests slower than \`WSGISlowRequests <seconds>\` (active ones every tick while they run, then one completed record). Click a row for phases, body I/O, CPU and concurrency. **Clear** drops completed records on the server.

## Categories of restarts

- **planned**: \`restart_interval\`, \`maximum_requests\`, \`inactivity_timeout\`, \`script_reload\`
- **tuning**: \`request_timeout\`, \`cpu_time_limit\`, \`eviction_signal\`, \`graceful_signal\`, \`startup_timeout\`
- **unplanned**: \`deadlock_timeout\`, \`signal_pipe_error\`, \`shutdown_signal\` and any other or missing reason.

Embedded-mode Apache children send a reason too, from what httpd tells the child: \`maximum_requests\` when it reached \`MaxConnectionsPerChild\`, \`graceful_signal\` for a graceful restart or stop and for idle retirement, \`shutdown_signal\` for a stop or hard restart. (Daemon processes under mod_wsgi 4.9 restarted for a deadlock or a changed WSGI script have no reason of their own: they show as \`shutdown_signal\`.)

## Caveats

- \`gil_wait_time\` sees only waits at mod_wsgi's own release/re-acquire points and the first sub-interpreter acquire. Contention inside pure-Python code or C extensions is invisible: it is a lower bound, usable to confirm GIL pressure but never to rule it out.
- \`input_read_time\` covers the body the application reads, not network receive (Apache may have buffered it already); \`output_write_time\` is time blocked handing data to Apache, not client receive latency.
- GIL wait, input read and output write overlap the application phase: they are not addends of server + queue + daemon + application.
- Response time excludes Apache's accept-queue wait. Embedded processes never report queue or daemon time.
- The total histogram is filled per request, not by summing phase histograms. Percentiles are interpolated inside buckets at most 25 % wide; min and max are exact.
- Status classes count only what the application set. Apache-generated errors (daemon unavailable 503, timeouts) are absent; status 0 counts as 5xx; any 1xx is a PEP 3333 violation.
- STOPPING marks the start of the final (shutdown-timeout) phase; the STOPPING→STOPPED gap is that drain. The earlier graceful phase is not visible. For non-graceful drains raise graceful-timeout first, then maximum-requests/restart-interval, fix the slow tail, and only then shutdown-timeout.
- \`q\` (GIL wait distribution) describes the shape of convoy decay, not its severity: read it together with the GIL-wait mean. High wait + transient: shorten the switch interval. High wait + compounding/convoy: shorten it and add processes.
- With several hosts, totals are summed; tuning advice applies per host.

## Process states

- **SATURATED** when, with at least 3 requests/min, the score from busy > 80 % sustained, queue time > 50 ms and ≥ 3 slow requests under load (busy ≥ 70 %) reaches 1.
- **CPU/GIL-BOUND** when not multi-core (cpu ≤ 1.2 cores or busy ≤ 50 %) and one of: one core pegged with several threads (cpu > 90 %, busy > 30 %), slot CPU below half of slot busy time (busy > 50 %), daemon hand-off > 50 ms, or GIL wait ≥ 15 % of application time (busy > 30 %).
`;
