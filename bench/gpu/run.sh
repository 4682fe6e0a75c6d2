#!/usr/bin/env bash
# The GPU benchmark: ONE script for the GPU machine (python3 + torch + transformers there; Node, the built
# app and MMLU come from .gpu/, made here by bench/gpu/prepare.sh). No network. Under 5 minutes on an H200:
#   0. generate an OLMoE-1B-7B-shaped bf16 checkpoint with random weights, on the GPU
#   a. a 600-token trace through the PyTorch engine (one load, one warm-up, 3 timed)
#   b. the full 5-shot MMLU test split (14,042 questions) with routing capture:
#      node dist/cli.js eval --engine pytorch (prefix KV cache reused per subject)
#   c. plain transformers loop on the same prompt ids, whole prompts, no prefix reuse (time-capped subset)
# Stage time limits (150 + 100 + 240 + 100 s) keep a hung stage from eating the device budget.
# Prints wall time, tokens/s, questions/s and the ratio; writes $OUT/gpu-<stamp>.json (OUT: the device
# tool's output folder; default bench/results). Then bench/gpu/webgpu.sh when it exists (its failure
# does not lose these numbers).
#   GPU_BENCH_TINY=1 bash bench/gpu/run.sh    CPU rehearsal: tiny shapes, 3 subjects x 8 questions
#   MOE_SCOPE_PYTHON=...                      interpreter (default python3)
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TINY=${GPU_BENCH_TINY:-0}
PY=${MOE_SCOPE_PYTHON:-python3}
RESULTS=${OUT:-$ROOT/bench/results}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
NAME=$([ "$TINY" = 1 ] && echo "gpu-tiny-$STAMP" || echo "gpu-$STAMP")
RESULT=$RESULTS/$NAME.json
W=$(mktemp -d "${TMPDIR:-/tmp}/moe-gpu-XXXXXX")
T0=$SECONDS
log() { printf '[gpu-bench +%ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "FAILED: $*"; finish 1; }
mkdir -p "$RESULTS"
export MOE_SCOPE_WORKER_DIR=$ROOT/python MOE_SCOPE_PYTHON=$PY

# Every stage's numbers go into $W/*.json as they come; finish() merges whatever exists, so a late
# failure still reports the earlier stages.
finish() {
  "$PY" bench/gpu/report.py --work "$W" --out "$RESULT" --tiny "$TINY" --total-seconds "$((SECONDS - T0))" || log "report failed"
  if [ -f bench/gpu/webgpu.sh ]; then
    log "bench/gpu/webgpu.sh"
    # In TINY mode the checkpoint is a toy: webgpu.sh then makes its own small one.
    ckpt=$([ "$TINY" = 1 ] || [ ! -f "$W/model/config.json" ] || echo "$W/model")
    (MOE_GPU_CHECKPOINT=$ckpt NODE_OPTIONS= bash bench/gpu/webgpu.sh) || log "bench/gpu/webgpu.sh failed (exit $?); the PyTorch numbers above stand"
  fi
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$W"
  exit "${1:-0}"
}

for f in .gpu/node.xz .gpu/app.tar.xz .gpu/mmlu.tar.xz .gpu/tokenizer/tokenizer.json; do
  [ -f "$f" ] || die "$f missing: run 'bash bench/gpu/prepare.sh' on the development machine and carry .gpu"
done
log "unpacking .gpu/ into $W"
xz -dc .gpu/node.xz >"$W/node" && chmod +x "$W/node" || die "node binary"
mkdir -p "$W/app" "$W/mmlu"
tar -xJf .gpu/app.tar.xz -C "$W/app" || die "app.tar.xz"
tar -xJf .gpu/mmlu.tar.xz -C "$W/mmlu" || die "mmlu.tar.xz"
NODE=$W/node
export NODE_OPTIONS="--max-old-space-size=8192"  # headroom for the run's plan and routing statistics
"$NODE" --version >/dev/null || die "the carried node binary does not run here"
"$PY" -c 'import torch, transformers, safetensors, tokenizers; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)' >&2 || die "$PY lacks torch/transformers/tokenizers"
"$PY" -m moe_scope_worker --check >"$W/environment.json" 2>/dev/null || true
if [ "$TINY" = 1 ]; then
  SUBJECTS=(--subjects abstract_algebra,anatomy,virology --limit 8); BATCH=8; TINYFLAG=--tiny; PLAIN_SECONDS=20
else
  SUBJECTS=(); BATCH=${GPU_BENCH_BATCH:-64}; TINYFLAG=; PLAIN_SECONDS=${GPU_BENCH_PLAIN_SECONDS:-35}
fi

log "0. generating the checkpoint"
timeout 150 "$PY" bench/gpu/make_checkpoint.py --out "$W/model" --tokenizer .gpu/tokenizer $TINYFLAG >"$W/checkpoint.json" || die "checkpoint generation"
cat "$W/checkpoint.json" >&2

log "a. 600-token trace, PyTorch engine"
timeout 100 "$NODE" "$W/app/dist/bench/gpu/trace.js" --model "$W/model" --text-file "$W/mmlu/test/high_school_biology_test.csv" \
  --engine pytorch --python "$PY" --tokens 600 --reps 3 >"$W/trace.json" || log "trace stage failed (continuing)"
cat "$W/trace.json" >&2 2>/dev/null

log "b. 5-shot MMLU test split with routing capture: node dist/cli.js eval --engine pytorch (batch $BATCH)"
e0=$(date +%s%N)
MOE_SCOPE_BENCH_DUMP_PROMPTS=$W/prompts.bin MOE_SCOPE_BENCH_STATS=$W/worker-stats.json timeout 240 \
  "$NODE" "$W/app/dist/cli.js" eval --engine pytorch --python "$PY" --model "$W/model" --data "$W/mmlu" --split test --shots 5 \
  --token-scope answer --batch-size "$BATCH" --out "$W/run" --quiet "${SUBJECTS[@]}" 2>"$W/eval.log"
rc=$?
e1=$(date +%s%N)
tail -3 "$W/eval.log" >&2
echo "{\"exitCode\": $rc, \"wallMs\": $(((e1 - e0) / 1000000))}" >"$W/eval-wall.json"
[ $rc = 0 ] || log "eval stage failed (exit $rc; log above)"

log "c. plain transformers loop on the same prompts (no prefix reuse, capped at ${PLAIN_SECONDS}s)"
if [ -s "$W/prompts.bin" ]; then
  timeout 100 "$PY" bench/gpu/plain_loop.py --model "$W/model" --prompts "$W/prompts.bin" --batch-size 32 --max-seconds "$PLAIN_SECONDS" --out "$W/plain.json" ||
    log "plain loop failed (continuing)"
else
  log "no prompts were dumped by the eval: skipping the plain loop"
fi
finish 0
