# Shell helpers shared by the setup, test and demo scripts (sourced, not run).

# Nested npm runs get a clean, explicit environment: the outer `npm test` / `npm run demo` exports
# npm_* variables (its user agent names the outer Node, its config, its lifecycle event) that would
# change how the nested install behaves; code-server's postinstall, for one, reads the Node version
# from npm_config_user_agent. Only what a shell login would have, plus network settings, is kept.
clean_env() { # PATH-prefix, command...
  local prefix="$1"
  shift
  local keep=(HOME="$HOME" USER="${USER:-root}" LANG="${LANG:-C.UTF-8}" TERM="${TERM:-dumb}" TMPDIR="${TMPDIR:-/tmp}"
    PATH="$prefix:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  local v
  for v in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS; do
    if [ -n "${!v:-}" ]; then keep+=("$v=${!v}"); fi
  done
  env -i "${keep[@]}" "$@"
}

# Prints elapsed time and the size of a folder every 20 s while a long step runs in the background.
with_progress() { # label, folder, command...
  local label="$1" dir="$2"
  shift 2
  local ts=$SECONDS
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if (((SECONDS - ts) % 20 < 2)) && ((SECONDS - ts >= 20)); then
      printf '  ... %s: %d s, %s so far\n' "$label" "$((SECONDS - ts))" "$(du -sh "$dir" 2>/dev/null | cut -f1)"
    fi
  done
  wait "$pid"
}
