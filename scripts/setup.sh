#!/usr/bin/env bash
# Create .venv with every workspace package and the pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"
if ! command -v uv >/dev/null 2>&1; then
  echo "llmbus: installing uv ..."
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  export PATH="$HOME/.local/bin:$PATH"
fi
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "llmbus: Python 3.11 or newer is needed (found: $("$PY" --version 2>&1))." >&2
  exit 1
fi
stamp=.venv/.llmbus-installed
if [ -f "$stamp" ] && [ "$stamp" -nt requirements.lock.txt ]; then
  exit 0
fi
[ -d .venv ] || uv venv --quiet --python "$PY" .venv
uv pip install --quiet --python .venv/bin/python -r requirements.lock.txt
touch "$stamp"
