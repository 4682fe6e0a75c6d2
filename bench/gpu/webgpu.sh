#!/usr/bin/env bash
# WebGPU vs the ONNX Runtime CPU engine on this machine (bench/gpu/webgpu.ts says what is measured).
#   On the GPU machine (called by bench/gpu/run.sh, after bench/gpu/prepare-webgpu.sh ran on the machine
#   that sent the checkout, with .gpu carried along):
#     MOE_GPU_CHECKPOINT=/path/to/olmoe-1b-7b-random OUT=/some/dir bash bench/gpu/webgpu.sh
#   Here, on lavapipe, to test the script (small widths, demo checkpoint):
#     GPU_BENCH_TINY=1 bash bench/gpu/webgpu.sh
# Needs no network. Uses Node from PATH or .gpu/node.xz; dist/ and onnxruntime-node from the checkout,
# .gpu/app.tar.xz (bench/gpu/prepare.sh) or .gpu/moe-scope-webgpu.tar.xz; the Vulkan loader from the system or .gpu/gl/*.deb (installed with
# dpkg -x into /, as notes/gpu.md says: the NVIDIA Vulkan ICD needs the GLVND libraries too); without a
# GPU Vulkan driver it uses lavapipe (scripts/setup-lavapipe.sh) — only sensible with GPU_BENCH_TINY=1.
# Results: $OUT/webgpu.json, else bench/results/gpu-webgpu[-tiny].json. Budget: WEBGPU_BENCH_BUDGET_S
# (default 170 s); WEBGPU_BENCH_LAYERS (default 4; TINY 8) layers of the checkpoint are run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
t0=$SECONDS
say() { printf '[webgpu.sh %ss] %s\n' "$((SECONDS - t0))" "$*" >&2; }

NODE=$(command -v node || true)
if [ -z "$NODE" ]; then
  [ -s .gpu/node.xz ] || { say "no node on PATH and no .gpu/node.xz (run bench/gpu/prepare-webgpu.sh where the checkout comes from)"; exit 1; }
  xz -dc .gpu/node.xz >/tmp/moe-node && chmod +x /tmp/moe-node
  NODE=/tmp/moe-node
fi
if [ ! -f dist/bench/gpu/webgpu.js ] || [ ! -e node_modules/onnxruntime-node/package.json ]; then
  if [ -s .gpu/app.tar.xz ]; then
    say "unpacking .gpu/app.tar.xz (bench/gpu/prepare.sh: dist/, onnxruntime-node) into the checkout"
    tar -xJf .gpu/app.tar.xz -C "$ROOT"
  elif [ -s .gpu/moe-scope-webgpu.tar.xz ]; then
    say "unpacking .gpu/moe-scope-webgpu.tar.xz (dist/, onnxruntime-node)"
    tar -xJf .gpu/moe-scope-webgpu.tar.xz -C "$ROOT"
  elif [ -d node_modules ]; then
    "$NODE" esbuild.mjs
  else
    say "no dist/ and no .gpu/moe-scope-webgpu.tar.xz (run bench/gpu/prepare-webgpu.sh first)"
    exit 1
  fi
fi

# The Vulkan loader and, for NVIDIA, the GLVND libraries.
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  if ls .gpu/gl/*.deb >/dev/null 2>&1; then
    say "installing the Vulkan loader and GLVND libraries from .gpu/gl (dpkg -x into /)"
    for f in .gpu/gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    say "no Vulkan loader (libvulkan1) and no .gpu/gl/*.deb"
  fi
fi
nvidia_icd=""
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
  [ -f "$f" ] && { nvidia_icd=$f; break; }
done
if [ -n "${VK_DRIVER_FILES:-}" ]; then
  say "VK_DRIVER_FILES=$VK_DRIVER_FILES (from the environment)"
elif [ -n "$nvidia_icd" ]; then
  export VK_DRIVER_FILES=$nvidia_icd
  say "NVIDIA Vulkan driver: $nvidia_icd"
else
  [ "${GPU_BENCH_TINY:-}" = 1 ] || say "WARNING: no GPU Vulkan driver found: falling back to lavapipe (CPU), numbers are not GPU numbers"
  eval "$(bash scripts/setup-lavapipe.sh | sed 's/^/export /')"
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

say "running dist/bench/gpu/webgpu.js (${GPU_BENCH_TINY:+TINY, }checkpoint: ${MOE_GPU_CHECKPOINT:-demo})"
"$NODE" --max-old-space-size=16384 dist/bench/gpu/webgpu.js
say "done"
