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
NODE_PATH="$PWD/node_modules" node --enable-source-maps --test --test-reporter=spec "${files[@]}"
