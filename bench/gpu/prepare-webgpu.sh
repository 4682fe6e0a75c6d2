#!/usr/bin/env bash
# Run HERE (a machine with network access to Debian packages), before sending the checkout to the GPU
# machine, AFTER bench/gpu/prepare.sh (which empties .gpu/; it calls this script at its end): puts into
# .gpu/ (git-ignored) what bench/gpu/webgpu.sh needs there and that machine lacks.
#   .gpu/gl/*.deb                 the Vulkan loader and GLVND libraries (the NVIDIA Vulkan ICD needs both)
# and, only when prepare.sh's .gpu/app.tar.xz is not there (webgpu.sh run on its own):
#   .gpu/node.xz                  this machine's Node binary (skipped if already there)
#   .gpu/moe-scope-webgpu.tar.xz  dist/ (no source maps) + onnxruntime-node (linux-x64 only) + onnxruntime-common
# The run must carry .gpu (it is ignored by git). Idempotent; prints sizes and the time taken.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
t0=$SECONDS
say() { printf '[prepare-webgpu] %s\n' "$*"; }
mkdir -p .gpu/gl

debs=(libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libopengl0 libgles2 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libx11-data)
if [ "$(ls .gpu/gl/*.deb 2>/dev/null | wc -l)" -ge "${#debs[@]}" ]; then
  say ".gpu/gl already holds $(ls .gpu/gl/*.deb | wc -l) packages"
else
  say "apt-get download ${debs[*]}"
  (cd .gpu/gl && apt-get download "${debs[@]}" >/dev/null) || { say "apt-get download failed (run apt-get update first?)"; exit 1; }
fi

if [ -s .gpu/app.tar.xz ] && [ -s .gpu/node.xz ]; then
  say "done in $((SECONDS - t0)) s: $(du -sh .gpu/gl | cut -f1) debs; webgpu.sh will use prepare.sh's .gpu/app.tar.xz and .gpu/node.xz"
  exit 0
fi

if [ -s .gpu/node.xz ]; then
  say ".gpu/node.xz already there"
else
  say "compressing $(command -v node) ($(node --version)) into .gpu/node.xz"
  xz -T2 -6 -c "$(command -v node)" >.gpu/node.xz.tmp && mv .gpu/node.xz.tmp .gpu/node.xz
fi

say "building dist/ and packing .gpu/moe-scope-webgpu.tar.xz"
node esbuild.mjs
ort=node_modules/onnxruntime-node
tar --dereference -cf - --exclude='*.map' dist \
  "$ort/package.json" "$ort/dist" "$ort/lib" "$ort/bin/napi-v6/linux/x64" \
  node_modules/onnxruntime-common | xz -T2 -6 >.gpu/moe-scope-webgpu.tar.xz.tmp
mv .gpu/moe-scope-webgpu.tar.xz.tmp .gpu/moe-scope-webgpu.tar.xz
say "done in $((SECONDS - t0)) s: $(du -sh .gpu/gl | cut -f1) debs, node.xz $(du -h .gpu/node.xz | cut -f1), tarball $(du -h .gpu/moe-scope-webgpu.tar.xz | cut -f1)"
