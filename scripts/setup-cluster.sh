#!/usr/bin/env bash
# What the sweep backends' cluster tests need (scripts/test-ray.sh, scripts/test-slurm.sh): Ray in the test
# Python (.venv, python/requirements-ray.txt) and Debian's slurm-wlm + munge. Idempotent; prints what it
# does and the time; a failure prints the line that matters and where the full log is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
t0=$SECONDS
say() { printf '[setup-cluster] %s\n' "$*"; }
py="${MOE_SCOPE_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$py" ] || { say "no Python at $py: run scripts/setup-python.sh first"; exit 1; }

if "$py" -c 'import ray' 2>/dev/null; then
  say "ray already in $py ($("$py" -c 'import ray; print(ray.__version__)'))"
else
  log="$ROOT/.venv/ray-install.log"
  say "pip install -r python/requirements-ray.txt into $(dirname "$(dirname "$py")") (~250 MB, ~1 min)"
  if ! "$py" -m pip install --disable-pip-version-check --retries 1 --timeout 20 -r "$ROOT/python/requirements-ray.txt" >"$log" 2>&1; then
    say "pip install failed: $(grep -E '^ERROR' "$log" | tail -1)"
    say "full log: $log"
    exit 1
  fi
fi

missing=()
for p in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  say "apt-get install ${missing[*]}"
  SUDO=()
  [ "$(id -u)" = 0 ] || SUDO=(sudo -n)
  log=/tmp/moe-scope-apt-cluster.log
  if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    say "apt-get failed: $(grep -E '^E:' "$log" | head -1)"
    say "full log: $log"
    exit 1
  fi
else
  say "slurm-wlm and munge already installed"
fi
say "done in $((SECONDS - t0)) s"
