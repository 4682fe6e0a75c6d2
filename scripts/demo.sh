#!/usr/bin/env bash
# One-command demo: VS Code in the browser (code-server) with MoE Scope installed from a freshly packaged
# VSIX, the generated demo model and a workspace with a few MMLU subjects. Stays in the foreground;
# Ctrl+C stops it.
#
#   bash scripts/demo.sh                 (npm run demo)      then open the printed URL
#   PORT=9000 bash scripts/demo.sh       another port (default 8080)
#   MOE_SCOPE_MODEL=/path/to/OLMoE-1B-7B-0924 bash scripts/demo.sh   a real checkpoint instead of the demo model
#   MOE_SCOPE_DEMO_RANDOM=1 bash scripts/demo.sh   the random-weights demo model (no Python, no training)
#
# The demo model is trained on first use (scripts/make-trained-demo-model.sh: OLMoE's layout, tiny widths,
# a few minutes on MMLU dev+val text with the .venv that scripts/setup-python.sh installs, ~1 GB).
#
# Everything it makes lands in .moe-scope-demo/ (model, its ONNX cache, workspace, code-server profile,
# VSIX); Node 24 and code-server go to .tools/, the Python that trains the demo model (and runs the
# PyTorch engine) to .venv/, MMLU unpacked to .data/mmlu/ (all shared with npm test). code-server listens
# on 127.0.0.1 only, without a password. From another computer: ssh -L 8080:127.0.0.1:8080 <this machine>.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${PORT:-8080}"
DEMO="${MOE_SCOPE_DEMO_DIR:-$ROOT/.moe-scope-demo}"
t0=$SECONDS
step() { printf '\n[demo] %s\n' "$*"; }
# shellcheck source=lib/common.sh
. "$ROOT/scripts/lib/common.sh"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "[demo] this script sets up code-server for Linux x86_64; on $(uname -s)-$(uname -m) install MoE Scope into your own VS Code (see README)." >&2
  exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "[demo] port $PORT on 127.0.0.1 is in use; choose another: PORT=8081 bash scripts/demo.sh" >&2
  exit 1
fi

step "1/6 Node 24, code-server and Chromium's libraries (first time ~5 min, then ~1 s)"
bash scripts/setup-code-server.sh
# shellcheck source=/dev/null
. "$ROOT/.tools/env.sh"

step "2/6 npm packages"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # onnxruntime-node's installer would fetch GPU providers from a host that may be unreachable; the CPU
  # binaries ship inside the package. (With a GPU and internet, drop the skip to get the CUDA provider.)
  clean_env "$(dirname "$(command -v node)")" ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
else
  echo "node_modules up to date"
fi

step "3/6 build and package the extension (VSIX for linux-x64)"
mkdir -p "$DEMO"
VSIX="$DEMO/moe-scope-linux-x64.vsix"
rm -f "$VSIX"
# `vsce package` runs the production build (npm run vscode:prepublish) first.
npx --no-install vsce package --no-rewrite-relative-links --target linux-x64 --out "$VSIX" 2>&1 | grep -E 'DONE|ERROR|WARN' || true
[ -f "$VSIX" ] || { echo "[demo] packaging failed: run 'npx vsce package --target linux-x64' to see why" >&2; exit 1; }
echo "VSIX: $VSIX ($(du -h "$VSIX" | cut -f1))"

step "4/6 model"
if [ -n "${MOE_SCOPE_MODEL:-}" ]; then
  MODEL="$(cd "$MOE_SCOPE_MODEL" && pwd)"
  echo "using $MODEL"
else
  # The demo model is trained here, not shipped: OLMoE's layout at tiny widths is still 6.8 M parameters
  # (29 MB in fp32), far above what a repository should carry, and training it takes a few minutes.
  # The stamp ties the trained folder to the scripts that made it; MOE_SCOPE_DEMO_RANDOM=1 skips training.
  MODEL="$DEMO/model-trained"
  stamp="$(cat python/train_demo_model.py scripts/make-trained-demo-model.sh src/engines/onnxruntime/demo/*.ts | sha256sum | cut -c1-16)"
  if [ -z "${MOE_SCOPE_DEMO_RANDOM:-}" ] && [ -f "$MODEL/model.safetensors" ] && [ "$(cat "$MODEL/.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "trained demo model already in $MODEL ($(node -p 'require(process.argv[1]).modelSha256.slice(0, 16)' "$MODEL/training.json"))"
  elif [ -z "${MOE_SCOPE_DEMO_RANDOM:-}" ] && bash scripts/setup-python.sh &&
    echo "[demo] training the demo model on MMLU dev+val text (a few minutes on 2 cores; once)" &&
    bash scripts/make-trained-demo-model.sh "$MODEL"; then
    echo "$stamp" >"$MODEL/.stamp"
  else
    [ -n "${MOE_SCOPE_DEMO_RANDOM:-}" ] || echo "[demo] could not train the demo model (see above): using the random-weights demo model instead" >&2
    MODEL="$DEMO/model"
    if [ -f "$MODEL/model.safetensors" ] && [ -f "$MODEL/tokenizer.json" ] && [ -f "$MODEL/config.json" ]; then
      echo "random demo model already in $MODEL"
    else
      rm -rf "$MODEL"
      node dist/cli.js make-demo-model --out "$MODEL" --family olmoe
    fi
  fi
fi
TRAINED="$(node -p 'require(process.argv[1]).moe_scope_demo_trained === true ? 1 : ""' "$MODEL/config.json" 2>/dev/null || true)"

step "5/6 demo workspace"
WS="$DEMO/workspace"
mkdir -p "$WS/.vscode"
if [ ! -d "$WS/mmlu/data" ]; then
  if [ -d media/demo-data/mmlu/data ]; then
    cp -R media/demo-data/mmlu "$WS/mmlu"
  else
    # The full MMLU vendored in data/mmlu (unpacked on first use): a few subjects for the workspace.
    src="$(bash scripts/unpack-mmlu.sh)"
    for split in dev val test; do
      mkdir -p "$WS/mmlu/data/$split"
      for s in astronomy high_school_geography college_physics marketing world_religions; do
        cp "$src/data/$split/${s}_$split.csv" "$WS/mmlu/data/$split/"
      done
    done
    cp "$src/LICENSE" "$WS/mmlu/LICENSE"
    cp "$src/categories.json" "$WS/mmlu/"
  fi
fi
first_test="$(cd "$WS" && ls mmlu/data/test/*_test.csv | head -1)"
cat >"$WS/README.md" <<EOF
# MoE Scope demo

This folder holds a few subjects of MMLU (Hendrycks et al., ICLR 2021; MIT licence, see
\`mmlu/LICENSE\`) and is set up to use the model in \`$MODEL\`
(\`.vscode/settings.json\` → \`moeScope.modelPath\`).

$( [ -z "${MOE_SCOPE_MODEL:-}" ] && [ -n "$TRAINED" ] && echo '> The model is the **demo model**: a **toy** in OLMoE'"'"'s layout (16 layers × 64 experts, top-8) with tiny
> widths, **trained here for a few minutes on MMLU dev and val text** (never the test split; see
> `training.json` beside it). It is **not OLMoE**: its routers have learnt something (lower gate entropy
> than random weights, tokens of one kind sharing experts, experts never chosen at the answer position),
> but its answers are near chance. Point `moeScope.modelPath` at a real checkpoint (e.g. OLMoE-1B-7B) for a real model.' )
$( [ -z "${MOE_SCOPE_MODEL:-}" ] && [ -z "$TRAINED" ] && echo '> The model is the generated **demo model**: the real OLMoE layout (16 layers × 64 experts, top-8)
> with tiny widths and **random weights**. It shows how MoE Scope works; its routing and answers say
> nothing about a trained model. Point `moeScope.modelPath` at a real checkpoint (e.g. OLMoE-1B-7B) for that.' )

## Try it

1. **Trace a question.** Open \`$first_test\`, put the cursor on (or select) a question row, then run
   **MoE: Trace selection** from the Command Palette (F1), or press Ctrl+Alt+M. The trace panel opens
   beside the editor: the answer probabilities for A–D, the routing map (which experts every token is
   routed to in every layer) and the gate entropy per layer. Hover a token to find it in the editor.
2. **Expert heatmap.** Click the MoE Scope icon in the activity bar (or run **MoE: Open expert heatmap**):
   expert activation counts per layer for the last trace or the last evaluation run.
3. **Evaluate.** Run **Terminal → Run Task… → MoE Scope: evaluate mmlu** (or **MoE: Run MMLU evaluation**).
   This demo evaluates $( [ -z "${MOE_SCOPE_MODEL:-}" ] && echo '10 questions per subject' || echo 'every question') ($( [ -z "${MOE_SCOPE_MODEL:-}" ] && echo '`moeScope.evaluation.limitPerSubject`' || echo 'set `moeScope.evaluation.limitPerSubject` to shorten it')).
   Runs are written to \`.moe-scope/runs/<run>/\` and resume when you run the task again.
4. **Summary.** **MoE: Show evaluation summary**: accuracy per subject and category, never-activated
   experts, per-expert accuracy, gate entropy by layer.

Settings live under **MoE Scope** in the Settings editor (Ctrl+,).
EOF
node - "$WS/.vscode/settings.json" "$MODEL" "${MOE_SCOPE_MODEL:-}" <<'EOF'
const fs = require('fs');
const [file, model, real] = process.argv.slice(2);
let s = {};
try { s = JSON.parse(fs.readFileSync(file, 'utf8')); } catch {}
s['moeScope.modelPath'] = model;
if (!real && s['moeScope.evaluation.limitPerSubject'] === undefined) s['moeScope.evaluation.limitPerSubject'] = 10;
fs.writeFileSync(file, JSON.stringify(s, null, 2) + '\n');
EOF

step "6/6 code-server"
CS="$DEMO/code-server"
mkdir -p "$CS/user-data/User" "$CS/extensions" "$CS/xdg-config" "$CS/xdg-data"
export XDG_CONFIG_HOME="$CS/xdg-config" XDG_DATA_HOME="$CS/xdg-data"
printf 'bind-addr: 127.0.0.1:%s\nauth: none\ncert: false\n' "$PORT" >"$CS/config.yaml"
node - "$CS/user-data/User/settings.json" "$MODEL" "$DEMO/cache" <<'EOF'
const fs = require('fs');
const [file, model, cache] = process.argv.slice(2);
let s = {};
try { s = JSON.parse(fs.readFileSync(file, 'utf8')); } catch {}
Object.assign(s, {
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'workbench.startupEditor': 'readme',
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'chat.disableAIFeatures': true,
  'git.openRepositoryInParentFolders': 'never',
  // also as a user setting: a workspace's moeScope.modelPath only counts in a trusted workspace
  'moeScope.modelPath': model,
  // the exported ONNX model stays in the demo folder instead of ~/.cache/moe-scope
  'moeScope.cacheDir': cache,
});
fs.writeFileSync(file, JSON.stringify(s, null, 2) + '\n');
EOF
cs=("$MOE_CODE_SERVER" --config "$CS/config.yaml" --user-data-dir "$CS/user-data" --extensions-dir "$CS/extensions")
"${cs[@]}" --install-extension "$VSIX" --force 2>&1 | grep -v -E '^\s*$' | tail -n 2

# The PyTorch engine's Python: the checkout's .venv when npm test built it (else the extension's own choice).
if [ -x "$ROOT/.venv/bin/python" ]; then export MOE_SCOPE_PYTHON="$ROOT/.venv/bin/python"; fi
URL="http://127.0.0.1:$PORT/?folder=$(node -p 'encodeURIComponent(process.argv[1])' "$WS")"
cat <<EOF

================================================================================
 MoE Scope demo ready in $((SECONDS - t0)) s. Open in a browser:

   $URL

 Workspace: $WS   (start with README.md)
 Model:     $MODEL
 Stop with Ctrl+C.
================================================================================

EOF
exec "${cs[@]}" --auth none --bind-addr "127.0.0.1:$PORT" --disable-telemetry --disable-update-check \
  --disable-workspace-trust --disable-getting-started-override "$WS"
