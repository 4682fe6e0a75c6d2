#!/usr/bin/env bash
# Bundles and runs the given test files alone (fast inner loop): scripts/run-test.sh test/unit/csv.test.ts ...
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d /tmp/moe-scope-test.XXXXXX)
files=()
for f in "$@"; do
  o="$out/$(basename "${f%.ts}").js"
  npx esbuild "$f" --bundle --platform=node --target=node20 --format=cjs --sourcemap --log-level=warning \
    --external:vscode --external:onnxruntime-node --external:playwright-core --outfile="$o"
  files+=("$o")
done
reporters=(--test-reporter=./scripts/lib/quiet-spec-reporter.mjs --test-reporter-destination=stdout)
# MOE_TEST_TAP=FILE: also a TAP report (scripts/test-all.sh counts tests from it).
if [ -n "${MOE_TEST_TAP:-}" ]; then reporters+=(--test-reporter=tap "--test-reporter-destination=$MOE_TEST_TAP"); fi
NODE_PATH="$PWD/node_modules" node --enable-source-maps --test "${reporters[@]}" "${files[@]}"
