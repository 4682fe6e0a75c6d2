#!/usr/bin/env bash
# Run HERE (not on the GPU machine): fills the git-ignored .gpu/ with what bench/gpu/run.sh needs there
# and the GPU machine lacks: a Node binary, the built app (dist/ without source maps, package.json, the
# onnxruntime-node linux-x64 files and onnxruntime-common), the MMLU test and dev CSVs, and a tokenizer.
#   bash bench/gpu/prepare.sh        (MMLU_DIR=... to choose the MMLU data folder with test/ and dev/)
# Keeps .gpu/node.xz and whatever bench/gpu/prepare-webgpu.sh added; replaces only its own files.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
G=$ROOT/.gpu
say() { printf '[gpu-prepare] %s\n' "$*"; }
t0=$SECONDS

# The MMLU data: $MMLU_DIR, else the copy vendored in data/mmlu (scripts/unpack-mmlu.sh), else the shared folder.
find_mmlu() {
  if [ -n "${MMLU_DIR:-}" ]; then
    if [ -d "$MMLU_DIR/data/test" ]; then echo "$MMLU_DIR/data"; else echo "$MMLU_DIR"; fi
    return
  fi
  if [ -x scripts/unpack-mmlu.sh ] || [ -f scripts/unpack-mmlu.sh ]; then
    local d
    d=$(bash scripts/unpack-mmlu.sh 2>/dev/null || true)
    if [ -n "$d" ] && [ -d "$d/data/test" ]; then echo "$d/data"; return; fi
  fi
  for d in "$ROOT/../shared/mmlu/data" /work/shared/mmlu/data; do [ -d "$d/test" ] && { echo "$d"; return; }; done
  echo ""
}
MMLU=$(find_mmlu)
[ -n "$MMLU" ] || { say "no MMLU data found: set MMLU_DIR to a folder with test/ and dev/ CSVs"; exit 1; }
ntest=$(ls "$MMLU"/test/*_test.csv 2>/dev/null | wc -l)
ndev=$(ls "$MMLU"/dev/*_dev.csv 2>/dev/null | wc -l)
[ "$ntest" = 57 ] && [ "$ndev" = 57 ] || { say "$MMLU: expected 57 test and 57 dev CSVs, found $ntest and $ndev"; exit 1; }

say "building dist/"
node esbuild.mjs >/dev/null
# Only this script's files are replaced: .gpu/ also holds what bench/gpu/prepare-webgpu.sh put there.
rm -rf "$G/tokenizer" "$G/app.tar.xz" "$G/mmlu.tar.xz"
mkdir -p "$G/tokenizer"
if [ -s "$G/node.xz" ]; then
  say ".gpu/node.xz already there"
else
  say "node binary -> .gpu/node.xz"
  xz -T2 -6 -c "$(command -v node)" >"$G/node.xz.tmp" && mv "$G/node.xz.tmp" "$G/node.xz"
fi

say "app -> .gpu/app.tar.xz"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/dist/bench/gpu" "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux"
cp dist/cli.js dist/inference-process.js "$stage/dist/"
cp dist/bench/gpu/*.js "$stage/dist/bench/gpu/"
cp package.json "$stage/"
ORT=$(readlink -f node_modules/onnxruntime-node)
cp -rL "$ORT/package.json" "$ORT/dist" "$ORT/lib" "$stage/node_modules/onnxruntime-node/"
cp -rL "$ORT/bin/napi-v6/linux/x64" "$stage/node_modules/onnxruntime-node/bin/napi-v6/linux/"
cp -rL "$(readlink -f node_modules/onnxruntime-common)" "$stage/node_modules/onnxruntime-common"
tar -C "$stage" -cf - . | xz -T2 -6 >"$G/app.tar.xz"

say "MMLU test + dev CSVs from $MMLU -> .gpu/mmlu.tar.xz"
tar -C "$MMLU" -cf - test dev | xz -T2 -6 >"$G/mmlu.tar.xz"

say "tokenizer (the demo model's byte-level BPE, trained on MMLU text) -> .gpu/tokenizer/"
node dist/cli.js make-demo-model --out "$stage/demo" 2>/dev/null
cp "$stage/demo/tokenizer.json" "$G/tokenizer/"
[ -f "$stage/demo/tokenizer_config.json" ] && cp "$stage/demo/tokenizer_config.json" "$G/tokenizer/"

# The WebGPU part of run.sh (bench/gpu/webgpu.sh) also needs the Vulkan loader and GLVND debs.
if [ -f bench/gpu/prepare-webgpu.sh ]; then bash bench/gpu/prepare-webgpu.sh; fi
say "done in $((SECONDS - t0)) s: $(du -sh "$G" | cut -f1) in .gpu/ ($(ls "$G" | tr '\n' ' '))"
