#!/usr/bin/env bash
# Makes ONNX Runtime's WebGPU provider usable on a machine without a GPU: Mesa 25's lavapipe (a CPU
# Vulkan driver, from bookworm-backports) unpacked privately into .tools/lavapipe, with no change to the
# system's packages except the Vulkan loader (libvulkan1). Debian 12's own Mesa 22 lavapipe is too old
# for Dawn ("shaderUniform*ArrayDynamicIndexing required"). Idempotent; prints what it does and the time.
#
#   bash scripts/setup-lavapipe.sh            install if needed, then print the environment to use
#   bash scripts/setup-lavapipe.sh --env      only print the environment lines (KEY=VALUE), fail if not installed
#
# The environment (VK_DRIVER_FILES, LD_LIBRARY_PATH, XDG_RUNTIME_DIR) must be set when the process that
# loads onnxruntime-node STARTS (the dynamic loader reads LD_LIBRARY_PATH once), so tests spawn a child
# with it; it is also written to .tools/lavapipe/env.sh for `source`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D="${MOE_LAVAPIPE_DIR:-$ROOT/.tools/lavapipe}"
LIB="$D/root/usr/lib/x86_64-linux-gnu"
t0=$SECONDS
say() { printf '[setup-lavapipe] %s\n' "$*" >&2; }

print_env() {
  echo "VK_DRIVER_FILES=$D/lvp.json"
  echo "LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}"
}
installed() { [ -f "$D/complete" ] && [ -f "$D/lvp.json" ] && [ -f "$LIB/libvulkan_lvp.so" ] && ldconfig -p | grep -q 'libvulkan.so.1'; }

if [ "${1:-}" = "--env" ]; then
  installed || { say "lavapipe is not installed in $D: run bash scripts/setup-lavapipe.sh"; exit 1; }
  print_env
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then say "only x86_64 Debian/Ubuntu is supported by this recipe"; exit 1; fi

if installed; then
  say "up to date: $(cat "$D/complete") in $D"
  print_env
  exit 0
fi
# Test files run in parallel and each calls this script: one installs, the others wait for it.
mkdir -p "$(dirname "$D")"
exec 9>"$D.lock"
flock 9
if installed; then
  say "installed meanwhile by another run: $(cat "$D/complete")"
  print_env
  exit 0
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
  say "apt-get install -y libvulkan1 (the Vulkan loader)"
  $SUDO apt-get install -y libvulkan1 >/dev/null 2>/dev/null || {
    $SUDO apt-get update >/dev/null 2>&1 || true
    $SUDO apt-get install -y libvulkan1 >/dev/null || { say "could not install libvulkan1 (see apt's output above)"; exit 1; }
  }
fi

say "downloading mesa-vulkan-drivers from bookworm-backports into $D (private apt lists; ~15 MB)"
rm -rf "$D"
mkdir -p "$D/lists/partial" "$D/debs"
echo "deb http://deb.debian.org/debian bookworm-backports main" >"$D/sources.list"
o=(-oDir::Etc::SourceList="$D/sources.list" -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists="$D/lists" -oDir::Cache="$D/cache")
mkdir -p "$D/cache/archives/partial"
apt-get "${o[@]}" update >"$D/apt-update.log" 2>&1 || { say "apt-get update for bookworm-backports failed: $(tail -1 "$D/apt-update.log")"; exit 1; }
(cd "$D/debs" && apt-get "${o[@]}" download mesa-vulkan-drivers libdrm2 libdrm-amdgpu1 libdrm-common >"$D/apt-download.log" 2>&1) ||
  { say "apt-get download failed: $(tail -1 "$D/apt-download.log")"; exit 1; }
# Anything else the backported driver links against that the system lacks (e.g. a newer LLVM).
for f in "$D"/debs/*.deb; do dpkg -x "$f" "$D/root"; done
missing=$(ldd "$LIB/libvulkan_lvp.so" | awk '/not found/ {print $1}' | sort -u)
if [ -n "$missing" ]; then
  say "the driver needs libraries the system lacks: $(echo $missing | tr '\n' ' ')"
  deps=$(apt-cache "${o[@]}" depends mesa-vulkan-drivers 2>/dev/null | awk '/Depends:/ {print $2}' | grep -E '^lib(llvm|LLVM|zstd|elf|expat|xcb|x11|wayland|sensors|z3|edit|xml)' | sort -u || true)
  (cd "$D/debs" && apt-get "${o[@]}" download $deps >>"$D/apt-download.log" 2>&1) || true
  for f in "$D"/debs/*.deb; do dpkg -x "$f" "$D/root"; done
  still=$(LD_LIBRARY_PATH="$LIB" ldd "$LIB/libvulkan_lvp.so" | awk '/not found/ {print $1}' | sort -u)
  [ -z "$still" ] || { say "still missing after unpacking dependencies: $still"; exit 1; }
fi
sed "s#\"library_path\": \"[^\"]*\"#\"library_path\": \"$LIB/libvulkan_lvp.so\"#" \
  "$D/root/usr/share/vulkan/icd.d/lvp_icd.json" >"$D/lvp.json"
print_env | sed 's/^/export /' >"$D/env.sh"
ver=$(dpkg-deb -f "$(ls "$D"/debs/mesa-vulkan-drivers_*.deb | head -1)" Version)
echo "mesa-vulkan-drivers $ver" >"$D/complete"
rm -rf "$D/cache" "$D/lists"
say "installed mesa-vulkan-drivers $ver (lavapipe) in $((SECONDS - t0)) s"
print_env
