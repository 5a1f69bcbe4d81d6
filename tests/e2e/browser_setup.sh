#!/usr/bin/env bash
# Installs what the browser end-to-end test needs: Debian's headless Chromium (/usr/bin/chromium)
# and the Python `playwright` package (only its driver; it never downloads a browser build:
# the test launches /usr/bin/chromium, so `playwright install` is never run).
#
#   bash tests/e2e/browser_setup.sh            # uses .venv/bin/python when present
#   PYTHON=/path/to/python bash tests/e2e/browser_setup.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON="python3"; fi
fi

if [[ ! -x /usr/bin/chromium ]]; then
    echo "browser_setup: installing Debian's chromium" >&2
    SUDO=""
    if [[ "$(id -u)" != "0" ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version >&2

if ! "$PYTHON" -c "import playwright.async_api" 2>/dev/null; then
    echo "browser_setup: pip-installing the playwright package into $PYTHON" >&2
    "$PYTHON" -m pip install -q playwright
fi
"$PYTHON" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))" >&2
echo "browser_setup: ready" >&2
