#!/usr/bin/env python3
"""Share of httpd's CPU samples spent in mod_wsgi_telemetry.so's own work.

Input: `perf script -F comm,tid,ip,sym,dso` of a `perf record --call-graph
dwarf` taken on every httpd process under load. A sample is charged to the
module when its leaf frame is the module's, or is in a library helper
(libc, APR, a few httpd helpers) called directly by the module: work the
module hands over (the rest of the filter chain, mod_wsgi's functions
behind our GOT wrappers) is not charged. Samples of the module's own
threads (reporter, watcher) are charged in full. Frame pointers or DWARF
unwinding are needed (`perf record --call-graph dwarf`). Prints the share
of all of httpd's samples.

Also prints the share of samples whose leaf frame is in mod_wsgi's own
.so (to compare with a mod_wsgi whose reporter is built in: mod_wsgi
6.1.1's reporter runs inside its .so).

Usage: perf-share.py perf.txt
"""
import sys

MODULE = "libmod_wsgi_telemetry.so"
# Libraries whose functions the module calls for its own work (tables,
# pools, clocks, string helpers): a sample there counts as the module's
# when the first frame above them is the module's.
HELPER_DSOS = ("libc.so", "libapr-1", "libaprutil-1", "[vdso]", "libpthread")
# httpd functions the module itself calls on the request path.
HELPER_SYMS = (
    "ap_add_output_filter_handle", "ap_add_input_filter_handle",
    "ap_run_http_scheme", "ap_get_module_config", "ap_set_module_config",
)


def samples(path):
    head, frames = None, []
    for line in open(path, errors="replace"):
        if not line.strip():
            if head is not None:
                yield head, frames
            head, frames = None, []
        elif not line.startswith(("\t", " ")):
            head = line.split()[0] if line.split() else ""
        else:
            parts = line.strip().split(None, 1)
            rest = parts[1] if len(parts) > 1 else ""
            sym, _, dso = rest.rpartition(" (")
            frames.append((sym, dso.rstrip(")")))
    if head is not None:
        yield head, frames


def charged(frames):
    """The module's work: the leaf is in the module, or in a helper it
    called (first non-helper frame up the stack is the module's)."""
    for sym, dso in frames:
        if MODULE in dso:
            return True
        if any(h in dso for h in HELPER_DSOS) or sym.split("+")[0] in HELPER_SYMS:
            continue
        return False
    return False


def main():
    total = ours = threads = mod_wsgi = 0
    for comm, frames in samples(sys.argv[1]):
        total += 1
        if frames and "mod_wsgi" in frames[0][1] and MODULE not in frames[0][1]:
            mod_wsgi += 1
        if comm.startswith("wsgi-telemetry"):
            ours += 1
            threads += 1
        elif charged(frames):
            ours += 1
    print(f"samples {total}; module {ours} = {ours / max(total, 1) * 100:.2f}% "
          f"(of which its own threads {threads} = {threads / max(total, 1) * 100:.2f}%); "
          f"mod_wsgi's .so {mod_wsgi / max(total, 1) * 100:.2f}%")


main()
