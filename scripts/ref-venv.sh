#!/usr/bin/env bash
# Creates (once) a throwaway virtualenv holding the reference ingester,
# mod_wsgi-telemetry 1.1.0 from PyPI, for the interop tests and the
# benchmark comparison. Idempotent: an existing venv with that version is
# reused. Prints the venv path.
#
#   REF_VENV   where the venv lives (default /tmp/refvenv)
set -euo pipefail
VENV=${REF_VENV:-/tmp/refvenv}
VERSION=1.1.0
if [ -x "$VENV/bin/mod_wsgi-telemetry" ] &&
   [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mod_wsgi-telemetry"))' 2>/dev/null)" = "$VERSION" ]; then
    echo "$VENV"
    exit 0
fi
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "mod_wsgi-telemetry==$VERSION" >&2
echo "$VENV"
