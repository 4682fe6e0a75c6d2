#!/usr/bin/env bash
# Every check, in order: install (if node_modules is missing or stale), build, type-check, unit tests,
# end-to-end tests in a real VS Code (code-server). Exits non-zero if anything failed and ends with one
# summary line "test-all: N passed, M failed" (tests counted from node's test runner; the build and
# the type-check count as one check each).
#
#   bash scripts/test-all.sh        (npm test)
#   MOE_SKIP_E2E=1 bash scripts/test-all.sh     everything but the end-to-end suite
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=lib/common.sh
. "$ROOT/scripts/lib/common.sh"
t0=$SECONDS
mkdir -p test-results
results=()   # "name|status|seconds"
passed=0
failed=0

# Sums "# pass N" / "# fail N" of a TAP report into passed/failed; returns 1 when the file is unusable.
count_tap() {
  local f="$1" p fl
  [ -s "$f" ] || return 1
  p=$(grep -E '^# pass [0-9]+' "$f" | tail -1 | awk '{print $3}')
  fl=$(grep -E '^# fail [0-9]+' "$f" | tail -1 | awk '{print $3}')
  [ -n "$p" ] && [ -n "$fl" ] || return 1
  passed=$((passed + p))
  failed=$((failed + fl))
}

run_step() { # name, command...
  local name="$1"
  shift
  local ts=$SECONDS
  printf '\n==== %s\n' "$name"
  if "$@"; then
    results+=("$name|ok|$((SECONDS - ts))")
    return 0
  fi
  results+=("$name|FAILED|$((SECONDS - ts))")
  return 1
}

# ---------------------------------------------------------------------------------------- install
needs_install=0
if [ ! -d node_modules ] || [ ! -f node_modules/.package-lock.json ]; then
  needs_install=1
elif [ package-lock.json -nt node_modules/.package-lock.json ]; then
  needs_install=1
fi
if [ "$needs_install" = 1 ]; then
  # onnxruntime-node's install script downloads GPU providers from a host that may be unreachable:
  # skip it (the CPU binaries ship inside the package). The repo's .npmrc says the same.
  # Nested under `npm test`: a clean environment (scripts/lib/common.sh) so the outer npm's npm_*
  # variables do not leak into the install.
  run_step "install (npm ci)" clean_env "$(dirname "$(command -v node)")" ONNXRUNTIME_NODE_INSTALL=skip \
    npm ci --no-audit --no-fund || {
    echo "test-all: 0 passed, 1 failed"
    exit 1
  }
fi

# The PyTorch engine's tests and the transformers-reference checks need torch and transformers (.venv).
if [ -z "${MOE_SCOPE_PYTHON:-}" ]; then
  run_step "install (scripts/setup-python.sh)" bash scripts/setup-python.sh || {
    echo "test-all: 0 passed, 1 failed"
    exit 1
  }
fi
# WebGPU tests run ONNX Runtime's WebGPU provider on Mesa's lavapipe (a CPU Vulkan driver) when there is no GPU.
run_step "install (scripts/setup-lavapipe.sh)" bash scripts/setup-lavapipe.sh || {
  echo "test-all: 0 passed, 1 failed"
  exit 1
}
# The full MMLU the tests use is vendored (data/mmlu); unpack and verify it once before the parallel tests.
run_step "MMLU data (scripts/unpack-mmlu.sh)" bash scripts/unpack-mmlu.sh || {
  echo "test-all: 0 passed, 1 failed"
  exit 1
}

# ------------------------------------------------------------------------------------------ build
if run_step "build (node esbuild.mjs)" node esbuild.mjs; then
  passed=$((passed + 1))
  built=1
else
  failed=$((failed + 1))
  built=0
fi

# ------------------------------------------------------------------------------------- type-check
if run_step "type-check (tsc --noEmit)" npx --no-install tsc -p . --noEmit; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

# ------------------------------------------------------------------------------------------- lint
if run_step "lint (eslint + prettier --check)" npm run --silent lint; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
fi

if [ "$built" = 1 ]; then
  # ------------------------------------------------------------------------------------ unit tests
  mapfile -t unit < <(find dist-test -name '*.test.js' -not -path 'dist-test/e2e/*' | sort)
  if ((${#unit[@]} == 0)); then
    echo "no unit tests found under dist-test/" >&2
    results+=("unit tests|FAILED (none found)|0")
    failed=$((failed + 1))
  else
    tap=test-results/unit.tap
    rm -f "$tap"
    # The console reporter is spec without Dawn's known WebGPU warnings (scripts/lib/quiet-spec-reporter.mjs;
    # they go to test-results/native-diagnostics.log); the TAP report keeps every line.
    # HF_HUB_DISABLE_PROGRESS_BARS: transformers' "Loading weights" bars from the Python the tests start.
    rm -f test-results/native-diagnostics.log
    run_step "unit tests (${#unit[@]} files)" env HF_HUB_DISABLE_PROGRESS_BARS=1 node --enable-source-maps --test \
      --test-reporter=./scripts/lib/quiet-spec-reporter.mjs --test-reporter-destination=stdout \
      --test-reporter=tap "--test-reporter-destination=$tap" "${unit[@]}"
    ok=$?
    if ! count_tap "$tap"; then
      failed=$((failed + 1))
    elif [ "$ok" != 0 ] && ! grep -qE '^# fail [1-9]' "$tap"; then
      failed=$((failed + 1)) # the runner failed without a failing test (e.g. a crash)
    fi
  fi

  # ------------------------------------------------------------------------------- Python (pytest)
  if [ -d python/tests ]; then
    py="${MOE_SCOPE_PYTHON:-$ROOT/.venv/bin/python}"
    xml=test-results/pytest.xml
    rm -f "$xml"
    run_step "python tests (pytest)" env PYTHONPATH="$ROOT/python" "$py" -m pytest -q -p no:cacheprovider --junitxml="$xml" python/tests
    ok=$?
    # Counts from the JUnit report; a skipped test counts as failed (nothing here may skip silently).
    if counts=$("$py" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) + int(s.get("skipped", 0)) for s in suites)
print(t - bad, bad)
PY
    ); then
      read -r p fl <<<"$counts"
      passed=$((passed + p))
      failed=$((failed + fl))
      if [ "$ok" != 0 ] && [ "$fl" = 0 ]; then failed=$((failed + 1)); fi
    else
      failed=$((failed + 1))
    fi
  fi

  # ------------------------------------------------------- sweep backends on real clusters (Ray, Slurm)
  if run_step "install (scripts/setup-cluster.sh)" bash scripts/setup-cluster.sh; then
    for c in ray slurm; do
      tap="test-results/$c.tap"
      rm -f "$tap"
      run_step "cluster test ($c)" env MOE_TEST_TAP="$ROOT/$tap" bash "scripts/test-$c.sh"
      ok=$?
      if ! count_tap "$tap"; then
        failed=$((failed + 1))
      elif [ "$ok" != 0 ] && ! grep -qE '^# fail [1-9]' "$tap"; then
        failed=$((failed + 1))
      fi
    done
  else
    failed=$((failed + 1))
  fi

  # ------------------------------------------------------------------------------------- end to end
  if [ -n "${MOE_SKIP_E2E:-}" ]; then
    results+=("e2e|skipped (MOE_SKIP_E2E)|0")
  else
    tap=test-results/e2e.tap
    rm -f "$tap"
    run_step "e2e (code-server + chromium)" env MOE_E2E_TAP="$tap" bash scripts/e2e.sh --no-build
    ok=$?
    if ! count_tap "$tap"; then
      failed=$((failed + 1))
    elif [ "$ok" != 0 ] && ! grep -qE '^# fail [1-9]' "$tap"; then
      failed=$((failed + 1))
    fi
  fi
fi

printf '\n==== summary (%s s)\n' "$((SECONDS - t0))"
for r in "${results[@]}"; do
  IFS='|' read -r name status secs <<<"$r"
  printf '  %-40s %-24s %4s s\n' "$name" "$status" "$secs"
done
echo "test-all: $passed passed, $failed failed"
[ "$failed" = 0 ] && [ "${#results[@]}" -gt 0 ] && ! printf '%s\n' "${results[@]}" | grep -q '|FAILED'
