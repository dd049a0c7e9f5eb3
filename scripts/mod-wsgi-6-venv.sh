#!/usr/bin/env bash
# Builds (once) mod_wsgi 6.1.1 from PyPI against this machine's apxs in a
# throwaway virtualenv: the comparison point of the module's benchmark and
# the "refuse beside a built-in reporter" integration test. Idempotent.
# Prints the path of the built mod_wsgi .so.
#
#   MOD_WSGI6_VENV   where the venv lives (default /tmp/mod_wsgi6-venv)
# Needs apache2-dev and python3-dev (scripts/install-deps.sh).
set -euo pipefail
VENV=${MOD_WSGI6_VENV:-/tmp/mod_wsgi6-venv}
VERSION=6.1.1
so() { "$VENV/bin/mod_wsgi-express" module-config 2>/dev/null | sed -n 's/^LoadModule wsgi_module "\(.*\)"$/\1/p'; }
if [ -x "$VENV/bin/python" ] &&
   [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mod_wsgi"))' 2>/dev/null)" = "$VERSION" ] &&
   [ -f "$(so)" ]; then
    so
    exit 0
fi
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-binary mod_wsgi "mod_wsgi==$VERSION" >&2
so
