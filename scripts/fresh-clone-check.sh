#!/usr/bin/env bash
# Clones this repository (its committed HEAD) into an empty temporary folder with nothing beside it and
# runs the README's two commands exactly as written, as a new user would:
#   1. `npm run demo` until the URL it prints answers HTTP 200 (then stops it)
#   2. `npm test`
# and prints one summary line with the time each took. Logs stay in the temporary folder (printed).
#   bash scripts/fresh-clone-check.sh            PORT=8090 by default for the demo
#   KEEP=1 bash scripts/fresh-clone-check.sh     keep the temporary folder
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-8090}"
BASE="$(mktemp -d /tmp/moe-scope-fresh.XXXXXX)"
CLONE="$BASE/moe-scope"
say() { printf '[fresh-clone-check] %s\n' "$*"; }

git clone -q "$ROOT" "$CLONE" || { say "git clone failed"; exit 1; }
say "cloned $(git -C "$CLONE" rev-parse --short HEAD) into $CLONE (nothing beside it); logs in $BASE"
cd "$CLONE"
# The README's commands, from the README itself: the first indented lines.
demo_cmd="$(grep -m1 -E '^    npm run demo' README.md | sed -E 's/^    //; s/ *#.*$//')"
test_cmd="$(grep -m1 -E '^    npm test' README.md | sed -E 's/^    //; s/ *#.*$//')"
[ -n "$demo_cmd" ] && [ -n "$test_cmd" ] || { say "README.md does not start with the two commands"; exit 1; }

# 1. demo, in its own process group so that stopping it stops code-server too
t0=$SECONDS
PORT="$PORT" setsid bash -c "$demo_cmd" >"$BASE/demo.log" 2>&1 </dev/null &
demo_pid=$!
url=""
demo_status="FAILED"
while kill -0 "$demo_pid" 2>/dev/null && ((SECONDS - t0 < 1800)); do
  url="$(grep -m1 -oE "http://127\.0\.0\.1:$PORT/[^ ]*" "$BASE/demo.log" || true)"
  if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; then
    demo_status="OK (HTTP 200)"
    break
  fi
  sleep 3
done
demo_s=$((SECONDS - t0))
kill -TERM -- "-$demo_pid" 2>/dev/null
sleep 2
kill -KILL -- "-$demo_pid" 2>/dev/null
wait "$demo_pid" 2>/dev/null
if [ "$demo_status" != "OK (HTTP 200)" ]; then
  say "demo did not answer; last lines of $BASE/demo.log:"
  tail -n 15 "$BASE/demo.log"
fi

# 2. tests
t1=$SECONDS
bash -c "$test_cmd" >"$BASE/test.log" 2>&1 </dev/null
test_rc=$?
test_s=$((SECONDS - t1))
test_line="$(grep -E '^test-all: [0-9]+ passed, [0-9]+ failed' "$BASE/test.log" | tail -1)"
if [ "$test_rc" != 0 ]; then
  say "'$test_cmd' failed (exit $test_rc); last lines of $BASE/test.log:"
  tail -n 30 "$BASE/test.log"
fi

summary="fresh-clone-check: '$demo_cmd' $demo_status in ${demo_s} s; '$test_cmd' exit $test_rc in ${test_s} s (${test_line:-no summary line})"
echo "$summary" | tee "$BASE/summary.txt"
[ -z "${KEEP:-}" ] && [ "$demo_status" = "OK (HTTP 200)" ] && [ "$test_rc" = 0 ] && rm -rf "$BASE"
[ "$demo_status" = "OK (HTTP 200)" ] && [ "$test_rc" = 0 ]
