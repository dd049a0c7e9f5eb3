#!/usr/bin/env python3
"""Where an open UI page spends its main thread: a DevTools `Profiler`
sample profile of our page (through chromedriver's goog/cdp/execute, as
ingester/tests/ui_bench.rs reads `Performance` metrics), with the page's own
timings (window.__telemetryPerf) over the same window.

    python3 scripts/ui_profile.py PAGE_URL WARMUP_S WINDOW_S [TAB]

PAGE_URL is a running `serve`'s page, e.g. fed by
`mod_wsgi-telemetry replay CAPTURE --socket S --realtime --loop --restamp
--stagger --processes 906` (about 190 live). Prints the main thread's busy
share, the DevTools metrics per second (ThreadTime, TaskDuration, script,
layout, style), the functions with the most self and inclusive time (ms of
main thread per second of wall time), and redraw / frame apply quantiles.
PRE_JS: a script run in the page before the warm-up (e.g. to try a CSS
rule); PROF_OUT: where to write the raw profile (default
/tmp/ui_profile.json, loadable in DevTools). Needs chromium and
chromium-driver; only the standard library.
"""
import json, sys, time, urllib.request, subprocess, socket, tempfile, os, collections

def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p

def req(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(url, data=data, method=method, headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(r, timeout=600) as f:
        return json.loads(f.read())

if len(sys.argv) < 4:
    sys.exit(__doc__)
url, warm, win = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
tab = sys.argv[4] if len(sys.argv) > 4 else 'overview'
port = free_port()
drv = subprocess.Popen(['chromedriver', f'--port={port}'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print('chromedriver pid', drv.pid, flush=True)
base = f'http://127.0.0.1:{port}'
for _ in range(100):
    try:
        req('GET', base + '/status'); break
    except Exception:
        time.sleep(0.1)
prof = tempfile.mkdtemp()
caps = {'capabilities': {'alwaysMatch': {'goog:chromeOptions': {'binary': '/usr/bin/chromium', 'args': [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', '--enable-precise-memory-info',
    '--js-flags=--expose-gc', '--window-size=1600,1000', f'--user-data-dir={prof}']}}}}
S = None
try:
    sid = req('POST', base + '/session', caps)['value']['sessionId']
    S = f'{base}/session/{sid}'
    def js(src):
        return req('POST', S + '/execute/sync', {'script': src, 'args': []})['value']
    def cdp(cmd, params=None):
        return req('POST', S + '/goog/cdp/execute', {'cmd': cmd, 'params': params or {}})['value']
    req('POST', S + '/url', {'url': url})
    while not js("return !!(window.__telemetry && window.__telemetry.store.snapshotCount > 0 && window.__telemetry.store.procs.size > 0);"):
        time.sleep(0.5)
    if os.environ.get('PRE_JS'):
        print('pre:', js(os.environ['PRE_JS']))
    if tab != 'overview':
        js(f"document.querySelector('.tab-btn[data-tab={tab}]').click(); return true;")
    time.sleep(warm)
    js("window.__telemetryPerf.reset(); window.__telemetryPerf.interval(); return true;")
    cdp('Performance.enable')
    m0 = {m['name']: m['value'] for m in cdp('Performance.getMetrics')['metrics']}
    cdp('Profiler.enable'); cdp('Profiler.setSamplingInterval', {'interval': 200}); cdp('Profiler.start')
    t0 = time.time()
    time.sleep(win)
    p = cdp('Profiler.stop')['profile']
    dt = time.time() - t0
    m1 = {m['name']: m['value'] for m in cdp('Performance.getMetrics')['metrics']}
    perf = js("const s = window.__telemetryPerf.summary(); s.interval = window.__telemetryPerf.interval(); s.upd = window.__telemetryPerf.update.values().sort((a,b)=>a-b); s.upd = {n: s.upd.length, p50: s.upd[Math.floor(s.upd.length*0.5)], p95: s.upd[Math.floor(s.upd.length*0.95)], max: s.upd[s.upd.length-1]}; const secs = {}; for (const [k, v] of Object.entries(window.__telemetryPerf.sections)) { const a = v.values().sort((x,y)=>x-y); secs[k] = {n: a.length, p50: a[Math.floor(a.length*0.5)], p95: a[Math.floor(a.length*0.95)], sum: a.reduce((x,y)=>x+y,0)}; } s.secs = secs; return s;")
    heap = cdp('Runtime.getHeapUsage')
    json.dump(p, open(os.environ.get('PROF_OUT', '/tmp/ui_profile.json'), 'w'))
    # aggregate
    nodes = {n['id']: n for n in p['nodes']}
    parent = {}
    for n in p['nodes']:
        for c in n.get('children', []):
            parent[c] = n['id']
    self_t = collections.Counter()
    for sid_, d in zip(p['samples'], p['timeDeltas']):
        self_t[sid_] += d
    total_us = sum(p['timeDeltas'])
    def name(n):
        cf = n['callFrame']
        return f"{cf['functionName'] or '(anon)'} {os.path.basename(cf['url'])}:{cf['lineNumber']+1}"
    selfn = collections.Counter(); incl = collections.Counter()
    for nid, t in self_t.items():
        selfn[name(nodes[nid])] += t
        seen = set(); x = nid
        while x is not None:
            nm = name(nodes[x])
            if nm not in seen:
                incl[nm] += t; seen.add(nm)
            x = parent.get(x)
    print(f'window {dt:.1f} s; profile {total_us/1e6:.1f} s sampled')
    idle = selfn.get('(idle) :0', 0)
    print(f'busy (non-idle) {(total_us-idle)/1e6/dt:.3f} of a core (sampled main thread)')
    d = lambda k: (m1.get(k, 0) - m0.get(k, 0)) / dt
    print(f"metrics: ThreadTime {d('ThreadTime'):.3f} core, TaskDuration {d('TaskDuration'):.3f} s/s, Script {d('ScriptDuration'):.3f}, Layout {d('LayoutDuration'):.4f}, RecalcStyle {d('RecalcStyleDuration'):.4f}")
    print('top self:')
    for k, v in selfn.most_common(30):
        print(f'  {v/1e3/dt:8.2f} ms/s  {k}')
    print('top inclusive:')
    for k, v in incl.most_common(45):
        print(f'  {v/1e3/dt:8.2f} ms/s  {k}')
    print('perf:', json.dumps({k: perf[k] for k in ['interval', 'upd', 'secs', 'byType', 'visible']}, indent=None))
    print('heap', heap)
finally:
    if S:
        try: req('DELETE', S)
        except Exception: pass
    drv.terminate(); drv.wait()
