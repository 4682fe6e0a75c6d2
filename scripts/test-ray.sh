#!/usr/bin/env bash
# The Ray backend's CI test (test/ray/sweep-ray.cluster.ts): a real two-node Ray cluster on this machine runs a
# sweep while one worker is killed. Needs Ray in the test Python (.venv, or MOE_SCOPE_PYTHON):
#   .venv/bin/pip install -r python/requirements-ray.txt
# Runs inside fresh network and PID namespaces (unshare, as root): Ray sees only the loopback interface, and
# every process it starts is killed with the namespace however the test ends. ~1-2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${MOE_SCOPE_RAY_NS:-}" != 1 ]; then
  py="${MOE_SCOPE_PYTHON:-$PWD/.venv/bin/python}"
  [ -x "$py" ] || { echo "test-ray: no Python at $py (run scripts/setup-python.sh or set MOE_SCOPE_PYTHON)" >&2; exit 1; }
  "$py" -c 'import ray' 2>/dev/null || { echo "test-ray: Ray is not installed in $py: $(dirname "$py")/pip install -r python/requirements-ray.txt" >&2; exit 1; }
  command -v unshare >/dev/null || { echo "test-ray: unshare (util-linux) not found" >&2; exit 1; }
  unshare --net --pid --fork --mount-proc true 2>/dev/null || { echo "test-ray: cannot create network and PID namespaces here (needs root or user namespaces): unshare --net --pid --fork --mount-proc failed" >&2; exit 1; }
  node esbuild.mjs
  exec unshare --net --pid --fork --kill-child --mount-proc env MOE_SCOPE_RAY_NS=1 bash "$0" "$@"
fi
ip link set lo up
# A second guard besides the namespace: stop this namespace's Ray whatever happens.
trap '"${MOE_SCOPE_PYTHON:-$PWD/.venv/bin/python}" -m ray.scripts.scripts stop --force >/dev/null 2>&1 || true' EXIT
bash scripts/run-test.sh test/ray/sweep-ray.cluster.ts
