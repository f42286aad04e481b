#!/usr/bin/env bash
# Runs the Python tests (official openai SDK + plain HTTP) against a real `hanlin serve`.
# Creates or reuses a venv under ${HANLIN_CACHE:-~/.cache/hanlin}/pyvenv with pinned packages.
# Binary: $HANLIN_BIN (default target/release/hanlin). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${HANLIN_CACHE:-$HOME/.cache/hanlin}/pyvenv"
req=tests/python/requirements.txt
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
# Reinstall only when the pinned set changed.
stamp="$venv/.requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/python "$@"
