/** The `moe-scope` command line as a user runs it (the bundled dist/cli.js; needs `node esbuild.mjs` first). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT, tempDir, reference, DEMO_CORPUS } from '../support/models';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

test('make-demo-model is deterministic and writes the Hugging Face layout', () => {
  const a = tempDir('cli-a');
  const b = tempDir('cli-b');
  for (const d of [a, b]) {
    const r = run(['make-demo-model', '--out', d, '--corpus', DEMO_CORPUS]);
    assert.equal(r.status, 0, r.stderr);
  }
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    assert.ok(fs.existsSync(path.join(a, f)), f);
    assert.equal(sha(path.join(a, f)), sha(path.join(b, f)), `${f} differs between two runs`);
  }
  const cfg = JSON.parse(fs.readFileSync(path.join(a, 'config.json'), 'utf8'));
  assert.equal(cfg.model_type, 'olmoe');
  assert.equal(cfg.num_hidden_layers, 16);
  assert.equal(cfg.num_experts, 64);
  assert.equal(cfg.num_experts_per_tok, 8);
  assert.equal(cfg.norm_topk_prob, false);
});

test('trace --json prints ids, tokens, routerProbs, topExperts, topWeights and lastLogits that match the reference', () => {
  const dir = tempDir('cli-model');
  assert.equal(run(['make-demo-model', '--out', dir, '--corpus', DEMO_CORPUS]).status, 0);
  const out = execFileSync(
    process.execPath,
    [cli, 'trace', '--model', dir, '--text', 'What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:', '--json', '--provider', 'cpu', '--cache', tempDir('cache')],
    { encoding: 'utf8', maxBuffer: 1 << 30 },
  );
  const j = JSON.parse(out);
  const T = j.ids.length;
  assert.equal(j.tokens.length, T);
  assert.equal(j.routerProbs.length, 16);
  assert.equal(j.routerProbs[0].length, T);
  assert.equal(j.routerProbs[0][0].length, 64);
  assert.equal(j.topExperts[15][T - 1].length, 8);
  assert.equal(j.topWeights[15][T - 1].length, 8);
  assert.equal(j.lastLogits.length, j.model.vocabSize);
  const ref = reference(dir, j.ids);
  for (let v = 0; v < j.lastLogits.length; v++) assert.ok(Math.abs(j.lastLogits[v] - ref.logits[T - 1][v]) < 1e-4);
  assert.deepEqual(j.topExperts[7][3], ref.topExperts[7][3]);
  // The weights applied are the softmax values of the chosen experts (OLMoE does not renormalise).
  assert.ok(Math.abs(j.topWeights[7][3][0] - j.routerProbs[7][3][j.topExperts[7][3][0]]) < 1e-6);
  const ids = execFileSync(
    process.execPath,
    [cli, 'trace', '--model', dir, '--ids', j.ids.join(','), '--json', '--provider', 'cpu', '--cache', tempDir('cache')],
    { encoding: 'utf8', maxBuffer: 1 << 30 },
  );
  assert.deepEqual(JSON.parse(ids).topExperts, j.topExperts, '--ids gives the same routing as --text');
});

test('bad usage exits non-zero with a message', () => {
  const r = run(['trace', '--model', tempDir('nothing'), '--text', 'x']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /no config\.json/);
  const u = run(['trace', '--text', 'x']);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /--model DIR is required/);
  assert.equal(run(['frobnicate']).status, 2);
});

test('analyze-weights --json gives per-layer E x E similarity matrices with a unit diagonal', () => {
  const dir = tempDir('cli-weights');
  assert.equal(run(['make-demo-model', '--out', dir, '--family', 'mixtral', '--corpus', DEMO_CORPUS]).status, 0);
  const r = run(['analyze-weights', '--model', dir, '--layers', '0,31', '--json', '--cache', tempDir('cache')]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.numExperts, 8);
  assert.deepEqual(
    j.layers.map((l: { layer: number }) => l.layer),
    [0, 31],
  );
  for (const l of j.layers) {
    for (const key of ['gate', 'up', 'down', 'all', 'router']) {
      assert.equal(l[key].length, 64, key);
      for (let e = 0; e < 8; e++) assert.ok(Math.abs(l[key][e * 8 + e] - 1) < 1e-6, `${key} diagonal`);
    }
    assert.ok(l.routerVsExpertR2 >= 0 && l.routerVsExpertR2 <= 1);
  }
});
