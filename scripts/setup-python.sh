#!/usr/bin/env bash
# Creates .venv/ (git-ignored) with what the PyTorch engine and the transformers-reference tests need
# (python/requirements.txt). Idempotent: skipped when .venv already has them. Prints what it does,
# sizes and elapsed time; a failure prints the line that matters and where the full log is.
#   MOE_SCOPE_PYTHON=/path/to/python   use that interpreter instead (nothing is installed)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MOE_SCOPE_VENV:-$ROOT/.venv}"
REQ="$ROOT/python/requirements.txt"
t0=$SECONDS
say() { printf '[setup-python] %s\n' "$*"; }

if [ -n "${MOE_SCOPE_PYTHON:-}" ]; then
  say "using MOE_SCOPE_PYTHON=$MOE_SCOPE_PYTHON (nothing installed)"
  exit 0
fi
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
  "$VENV/bin/python" -c 'import torch, transformers, safetensors, pytest' 2>/dev/null; then
  say "$VENV is up to date ($("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'))"
  exit 0
fi
command -v python3 >/dev/null || { say "python3 not found: install Python 3.10 or later (Debian: apt-get install python3 python3-venv)"; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV ($(python3 --version))"
  python3 -m venv "$VENV" || { say "python3 -m venv failed: on Debian/Ubuntu install python3-venv"; exit 1; }
fi
log="$VENV/install.log"
say "pip install -r python/requirements.txt (torch, transformers, safetensors, numpy, pytest; ~1 GB, ~1 min)"
# --retries/--timeout: a package index that cannot be reached fails fast instead of retrying for minutes.
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --retries 1 --timeout 20 -r "$REQ" >"$log" 2>&1; then
  say "pip install failed: $(grep -E '^ERROR' "$log" | tail -1)"
  say "full log: $log"
  exit 1
fi
echo "$want" >"$stamp"
say "done in $((SECONDS - t0)) s ($(du -sh "$VENV" | cut -f1)): $("$VENV/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
