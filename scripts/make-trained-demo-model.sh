#!/usr/bin/env bash
# Makes the demo's trained toy model in OUT: OLMoE's layout with tiny widths (make-demo-model --family
# olmoe, its byte-level BPE tokenizer learnt from MMLU dev+val text only), then trained for a few minutes
# on MMLU dev+val text (python/train_demo_model.py; never the test split). Needs dist/cli.js (node
# esbuild.mjs) and a Python with torch and transformers (scripts/setup-python.sh makes .venv).
#
#   bash scripts/make-trained-demo-model.sh OUT [extra python/train_demo_model.py options, e.g. --steps 3]
#
# MOE_SCOPE_PYTHON picks the interpreter (default .venv/bin/python). Deterministic: the same machine
# writes the same model.safetensors every time (its SHA-256 is printed and kept in OUT/training.json).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:?usage: make-trained-demo-model.sh OUT [train_demo_model.py options]}"
shift
PY="${MOE_SCOPE_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || { echo "make-trained-demo-model: no Python at $PY: run 'bash scripts/setup-python.sh' or set MOE_SCOPE_PYTHON" >&2; exit 1; }
[ -f "$ROOT/dist/cli.js" ] || { echo "make-trained-demo-model: $ROOT/dist/cli.js is missing: run 'node esbuild.mjs'" >&2; exit 1; }
MMLU="$(bash "$ROOT/scripts/unpack-mmlu.sh")"
work="$(mktemp -d "${TMPDIR:-/tmp}/moe-scope-demo-train.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The tokenizer is learnt from the same dev+val files the weights are trained on: no test text at all.
mkdir -p "$work/corpus/data/dev" "$work/corpus/data/val"
cp "$MMLU"/data/dev/*_dev.csv "$work/corpus/data/dev/"
cp "$MMLU"/data/val/*_val.csv "$work/corpus/data/val/"
node "$ROOT/dist/cli.js" make-demo-model --out "$work/init" --family olmoe --corpus "$work/corpus" >/dev/null
rm -rf "$OUT"
mkdir -p "$(dirname "$OUT")"
HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error HF_HUB_DISABLE_PROGRESS_BARS=1 \
  "$PY" "$ROOT/python/train_demo_model.py" --init "$work/init" --mmlu "$MMLU" --out "$OUT.partial" "$@"
mv -T "$OUT.partial" "$OUT"
