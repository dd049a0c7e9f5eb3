#!/usr/bin/env python3
"""Per-request cost by object (and, with --functions, by function) from the
profiles `wrk-compare.sh` keeps with `CG_KEEP=DIR` and `INSTR=N1,N2`.

    python3 mod_wsgi_reporter/benches/cg-per-request.py DIR/F-20 DIR/F-120 [DIR/E-20 DIR/E-120] [--functions PATTERN]

Each directory holds one callgrind profile per process of one run
(`cg.out.<pid>`). Self costs (every event the profiles have: Ir, and with
`CACHESIM=1` the simulated misses I1mr D1mr D1mw ILmr DLmr DLmw) are summed
per object over all processes of a run; the second run minus the first,
divided by the difference in requests (read from the directory names,
`<variant>-<requests>`), is the cost per request. With four directories
(a variant and its baseline) the difference of the two is printed too.
--functions PATTERN lists the functions whose object or name contains
PATTERN (e.g. `mod_wsgi_telemetry`), per request, for the first pair.
"""
import collections
import glob
import os
import re
import sys


def parse(path):
    """Self cost per (object, function) of one callgrind profile."""
    events = []
    cost = collections.defaultdict(lambda: None)
    names = {"ob": {}, "fn": {}, "fl": {}}
    ob = fn = ""
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
                continue
            c = line[0] if line else ""
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                vals = [int(x) for x in parts[1:]]
                key = (ob, fn)
                acc = cost[key]
                if acc is None:
                    acc = cost[key] = [0] * len(events)
                for i, v in enumerate(vals):
                    acc[i] += v
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            m = re.match(r"(c?)(ob|fn|fl|fi|fe)=\((\d+)\)\s*(.*)", line)
            if m:
                called, kind, ident, name = m.groups()
                table = names["fl" if kind in ("fi", "fe") else kind]
                if name:
                    table[ident] = name.strip()
                if not called:
                    if kind == "ob":
                        ob = table.get(ident, ident)
                    elif kind == "fn":
                        fn = table.get(ident, ident)
                continue
            m = re.match(r"(ob|fn)=(.*)", line)
            if m:
                if m.group(1) == "ob":
                    ob = m.group(2).strip()
                else:
                    fn = m.group(2).strip()
    return events, cost


def run_totals(d):
    """(events, {(object, function): costs}) summed over a run's processes."""
    total = collections.defaultdict(lambda: None)
    events = None
    for p in sorted(glob.glob(os.path.join(d, "cg.out.*"))):
        ev, cost = parse(p)
        if events is None:
            events = ev
        for k, v in cost.items():
            acc = total[k]
            if acc is None:
                acc = total[k] = [0] * len(events)
            for i, x in enumerate(v):
                acc[i] += x
    return events, total


def requests_of(d):
    return int(re.search(r"-(\d+)/?$", d.rstrip("/")).group(1))


def per_request(d1, d2, by):
    ev, a = run_totals(d1)
    _, b = run_totals(d2)
    n = requests_of(d2) - requests_of(d1)
    out = collections.defaultdict(lambda: [0.0] * len(ev))
    for k in set(a) | set(b):
        va = a.get(k) or [0] * len(ev)
        vb = b.get(k) or [0] * len(ev)
        key = by(k)
        for i in range(len(ev)):
            out[key][i] += (vb[i] - va[i]) / n
    return ev, out


def short(ob):
    return os.path.basename(ob) or ob


def main():
    args = sys.argv[1:]
    pattern = None
    if "--functions" in args:
        i = args.index("--functions")
        pattern = args[i + 1]
        del args[i : i + 2]
    if len(args) not in (2, 4):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    ev, v = per_request(args[0], args[1], lambda k: short(k[0]))
    base = per_request(args[2], args[3], lambda k: short(k[0]))[1] if len(args) == 4 else None
    head = "object".ljust(34) + "".join(e.rjust(11) for e in ev)
    print("per request, " + (f"{args[0]}..{args[1]} minus {args[2]}..{args[3]}" if base else f"{args[0]}..{args[1]}"))
    print(head)
    keys = sorted(set(v) | set(base or {}), key=lambda k: -abs(v.get(k, [0])[0] - ((base or {}).get(k, [0])[0])))
    tot = [0.0] * len(ev)
    for k in keys:
        row = v.get(k, [0.0] * len(ev))
        if base is not None:
            row = [x - y for x, y in zip(row, base.get(k, [0.0] * len(ev)))]
        tot = [t + x for t, x in zip(tot, row)]
        if all(abs(x) < 0.5 for x in row):
            continue
        print(k[:34].ljust(34) + "".join(f"{x:11.1f}" for x in row))
    print("total".ljust(34) + "".join(f"{x:11.1f}" for x in tot))
    if pattern:
        _, f = per_request(args[0], args[1], lambda k: (short(k[0]), k[1]))
        print(f"\nfunctions matching {pattern!r}, per request ({args[0]}..{args[1]})")
        print("function".ljust(70) + "".join(e.rjust(9) for e in ev))
        rows = [(k, r) for k, r in f.items() if pattern in k[0] or pattern in k[1]]
        rows.sort(key=lambda kr: -kr[1][0])
        for (ob, fn), r in rows:
            if all(abs(x) < 0.5 for x in r):
                continue
            print(fn[:70].ljust(70) + "".join(f"{x:9.1f}" for x in r))
        s = [sum(r[i] for _, r in rows) for i in range(len(ev))]
        print("sum".ljust(70) + "".join(f"{x:9.1f}" for x in s))


if __name__ == "__main__":
    main()
