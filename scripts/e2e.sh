#!/usr/bin/env bash
# End-to-end tests: MoE Scope in a real VS Code (code-server 4.139.1 + Debian Chromium via Playwright).
#
#   bash scripts/e2e.sh              build, then run the suite with the repo as the development extension
#   bash scripts/e2e.sh --vsix       package a linux-x64 VSIX, install it into the test profile, run the suite
#   bash scripts/e2e.sh --no-build   run against the current dist/ and dist-test/ (test-all.sh builds first)
# Environment: MOE_E2E_ONLY=a,b (run only those steps), MOE_E2E_KEEP_TMP=1 (keep temp dirs and logs),
# MOE_E2E_TIMEOUT=seconds (whole-suite limit, default 1500), MOE_E2E_TAP=file (also write a TAP report).
# Screenshots (and FAILED-*.png on failure) land in test-results/screenshots/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/common.sh
. "$ROOT/scripts/lib/common.sh"

build=1
vsix=""
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --vsix) vsix=1 ;;
    *) echo "usage: scripts/e2e.sh [--no-build] [--vsix]" >&2; exit 2 ;;
  esac
done

# Node 24 + code-server + chromium (idempotent: ~1 s when already installed).
mkdir -p .tools
bash scripts/setup-code-server.sh 2>&1 | tee .tools/setup-code-server.log
[ "${PIPESTATUS[0]}" = 0 ] || { echo "[e2e] setup failed; log: .tools/setup-code-server.log" >&2; exit 1; }

if [ ! -d node_modules/playwright-core ]; then
  echo "[e2e] node_modules missing: installing (onnxruntime-node's GPU download skipped)"
  clean_env "$(dirname "$(command -v node)")" ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
fi

export MOE_E2E_VSIX=""
if [ -n "$vsix" ]; then
  mkdir -p .tools
  out="$ROOT/.tools/moe-scope-linux-x64.vsix"
  echo "[e2e] packaging $out"
  # vscode:prepublish runs the production build (dist/ and dist-test/).
  npx --no-install vsce package --no-rewrite-relative-links --target linux-x64 --out "$out" 2>&1 | grep -E 'DONE|ERROR|WARN' || true
  [ -f "$out" ] || { echo "[e2e] vsce package failed" >&2; exit 1; }
  echo "[e2e] VSIX: $(du -h "$out" | cut -f1)"
  MOE_E2E_VSIX="$out"
elif [ "$build" = 1 ]; then
  node esbuild.mjs
fi
[ -f dist-test/e2e/suite.js ] || { echo "[e2e] dist-test/e2e/suite.js missing: build first (node esbuild.mjs)" >&2; exit 1; }

mkdir -p test-results
reporters=(--test-reporter=spec --test-reporter-destination=stdout)
if [ -n "${MOE_E2E_TAP:-}" ]; then reporters+=(--test-reporter=tap "--test-reporter-destination=$MOE_E2E_TAP"); fi
t0=$SECONDS
set +e
# `timeout` sends SIGTERM: the harness's signal hooks kill code-server's process group and Chromium.
timeout --kill-after=30 "${MOE_E2E_TIMEOUT:-1500}" node --enable-source-maps --test --test-concurrency=1 "${reporters[@]}" dist-test/e2e/suite.js
rc=$?
set -e
echo "[e2e] suite finished in $((SECONDS - t0)) s (exit $rc); screenshots: test-results/screenshots/"
exit $rc
