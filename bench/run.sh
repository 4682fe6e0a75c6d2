#!/usr/bin/env bash
# Runs every benchmark once, on this machine, and writes BENCHMARKS.md from the results of that run.
#   bash bench/run.sh            (npm run bench)
#   bash bench/run.sh --quick    fewer repetitions and sizes
# Run it on an otherwise idle machine: the numbers are wall-clock times.
set -euo pipefail
cd "$(dirname "$0")/.."
node esbuild.mjs
mkdir -p bench/results
node dist/bench/engine.js "$@" > /dev/null
node dist/bench/eval.js "$@" > /dev/null
node dist/bench/nullModel.js "$@" > /dev/null
node dist/bench/weights.js > /dev/null
# The engines side by side needs the PyTorch engine's Python (scripts/setup-python.sh or MOE_SCOPE_PYTHON).
if [ -n "${MOE_SCOPE_PYTHON:-}" ] || [ -x .venv/bin/python ]; then node dist/bench/engines.js "$@" > /dev/null; else echo "no Python for the PyTorch engine (run scripts/setup-python.sh): skipping bench/engines.ts" >&2; fi
# Weight precisions on OLMoE widths (one decoder layer; --full for the real 16-layer model): needs the Python for its checkpoint.
if [ -n "${MOE_SCOPE_PYTHON:-}" ] || [ -x .venv/bin/python ]; then node dist/bench/precision.js > /dev/null; else echo "no Python: skipping bench/precision.ts" >&2; fi
# One MoE layer per expert formulation (float operator, QMoE, MatMulNBits per expert): why int8/int4 use the last.
node dist/bench/quantizedExperts.js > /dev/null
if [ -x /usr/bin/chromium ]; then node dist/bench/webview/render.js > /dev/null; else echo "no /usr/bin/chromium: skipping the webview render benchmark" >&2; fi
node dist/bench/report.js
