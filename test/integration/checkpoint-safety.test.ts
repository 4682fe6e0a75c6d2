/**
 * Checkpoint folders as an attacker or a careless user leaves them (issue 12): hub snapshots made of
 * relative symlinks, FIFOs, a tensor in two files, configs that disagree with the tensors (absurdly or
 * subtly), interrupted graph builds and cache entries that never loaded.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { Checkpoint, CheckpointError } from '../../src/engines/onnxruntime/checkpoint';
import { removeAbandonedBuilds } from '../../src/engines/onnxruntime/runtime';
import { EngineFailure, type PrecisionSetting } from '../../src/shared/protocol';
import { makeModel, tempDir } from '../support/models';

const base = makeModel({ family: 'olmoe', overrides: { layers: 2 } });

function copyModel(from = base): string {
  const dir = tempDir('bad');
  for (const f of fs.readdirSync(from)) fs.copyFileSync(path.join(from, f), path.join(dir, f));
  return dir;
}

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const file = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(c);
  fs.writeFileSync(file, JSON.stringify(c));
}

/** A Hugging Face hub cache entry: snapshots/<rev>/<file> are relative symlinks to ../../blobs/<hash>. */
function hubSnapshot(from: string): string {
  const repo = path.join(tempDir('hub'), 'models--org--model');
  const snap = path.join(repo, 'snapshots', 'abc123');
  fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
  fs.mkdirSync(snap, { recursive: true });
  for (const [i, f] of fs.readdirSync(from).entries()) {
    fs.copyFileSync(path.join(from, f), path.join(repo, 'blobs', `blob${i}`));
    fs.symlinkSync(path.join('..', '..', 'blobs', `blob${i}`), path.join(snap, f));
  }
  return snap;
}

async function traceOf(dir: string, cacheDir = tempDir('cache')) {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir });
    return await engine.trace({ text: 'The cell membrane regulates' }, { includeProbs: true, includeLastLogits: true });
  } finally {
    await engine.dispose();
  }
}

async function loadError(dir: string): Promise<string> {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
  } catch (e) {
    assert.ok(e instanceof EngineFailure, `expected an EngineFailure, got ${e}`);
    return e.message;
  } finally {
    await engine.dispose();
  }
  assert.fail(`loading ${dir} should have failed`);
}

for (const dtype of ['F32', 'BF16'] as const) {
  test(`a hub snapshot of relative symlinks loads (${dtype}) and computes what the plain folder computes, also from its cache`, async () => {
    const plain = dtype === 'F32' ? base : makeModel({ family: 'olmoe', dtype, overrides: { layers: 2 } });
    const snap = hubSnapshot(plain);
    const want = await traceOf(plain);
    const cache = tempDir('cache');
    for (const round of ['built', 'cached']) {
      const got = await traceOf(snap, cache);
      assert.deepEqual(Array.from(got.routing.topExperts), Array.from(want.routing.topExperts), round);
      assert.deepEqual(Array.from(got.lastLogits!), Array.from(want.lastLogits!), round);
    }
  });
}

test('a FIFO in place of a checkpoint file is refused at once instead of hanging the load', () => {
  for (const name of ['model.safetensors', 'config.json', 'tokenizer.json']) {
    const dir = copyModel();
    fs.rmSync(path.join(dir, name));
    const r = spawnSync('mkfifo', [path.join(dir, name)]);
    assert.equal(r.status, 0, `mkfifo is needed for this test: ${r.stderr}`);
    assert.throws(
      () => Checkpoint.open(dir),
      (e: Error) =>
        e instanceof CheckpointError && e.message === `${path.join(dir, name)}: not a regular file (a FIFO); a checkpoint folder holds ordinary files`,
    );
  }
});

test('a tensor name in two safetensors files is refused naming both files', async () => {
  const dir = copyModel();
  fs.copyFileSync(path.join(dir, 'model.safetensors'), path.join(dir, 'model-extra.safetensors'));
  const msg = await loadError(dir);
  assert.match(
    msg,
    /tensor ".*" is in two files, .*model-extra\.safetensors and .*model\.safetensors|tensor ".*" is in two files, .*model\.safetensors and .*model-extra\.safetensors/,
  );
});

test('config counts that disagree with the tensors are refused before anything is allocated for them', async () => {
  const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
    ['absurd layers', (c) => (c.num_hidden_layers = 1e9), /num_hidden_layers is 1000000000 but the safetensors files hold 2 layers/],
    ['fewer layers', (c) => (c.num_hidden_layers = 1), /num_hidden_layers is 1 but the safetensors files hold 2 layers/],
    ['experts', (c) => ((c.num_experts = 32), (c.num_experts_per_tok = 4)), /the number of experts is 32 but the safetensors files hold 64 experts in layer 0/],
    ['vocab', (c) => (c.vocab_size = 1e9), /vocab_size is 1000000000 but the safetensors files hold \d+ embedding rows|vocab_size/],
  ];
  for (const [name, edit, expected] of cases) {
    const dir = copyModel();
    editConfig(dir, edit);
    const msg = await loadError(dir);
    assert.match(msg, expected, name);
    assert.ok(msg.includes(path.join(dir, 'config.json')), `${name}: names the file: ${msg}`);
  }
});

test('graph builds: the cache is marked complete only after a session loaded it; abandoned temporary folders are removed', async () => {
  const cache = tempDir('cache');
  const engine = new Engine();
  try {
    await engine.load(base, { executionProvider: 'cpu', cacheDir: cache });
  } finally {
    await engine.dispose();
  }
  const [graphDir] = fs.readdirSync(cache).filter((n) => !n.includes('.tmp-'));
  assert.ok(fs.existsSync(path.join(cache, graphDir, 'complete')));
  // A graph folder whose session never loaded (no marker) and whose data is broken is rebuilt, not trusted.
  fs.rmSync(path.join(cache, graphDir, 'complete'));
  fs.writeFileSync(path.join(cache, graphDir, 'model.onnx'), 'not a graph');
  assert.deepEqual(Array.from((await traceOf(base, cache)).routing.topExperts), Array.from((await traceOf(base)).routing.topExperts));
  assert.ok(fs.existsSync(path.join(cache, graphDir, 'complete')));
  // A marked entry that no longer loads is rebuilt too.
  fs.writeFileSync(path.join(cache, graphDir, 'model.onnx'), 'not a graph');
  await traceOf(base, cache);
  // A build killed midway leaves <graph>.tmp-<pid>-<time>: removed at the next start once its pid is gone.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  const abandoned = path.join(cache, `${graphDir}.tmp-${dead}-123`);
  const live = path.join(cache, `${graphDir}.tmp-${process.ppid}-456`);
  fs.mkdirSync(abandoned);
  fs.writeFileSync(path.join(abandoned, 'experts.bin'), 'x');
  fs.mkdirSync(live);
  assert.deepEqual(removeAbandonedBuilds(cache), [path.basename(abandoned)]);
  assert.ok(!fs.existsSync(abandoned) && fs.existsSync(live), 'a live process keeps its build folder');
  fs.mkdirSync(abandoned);
  await traceOf(base, cache);
  assert.ok(!fs.existsSync(abandoned), 'the next load removes it');
});

/** Overwrites one element (default 0) of a float32 tensor in place. */
function poke(dir: string, tensor: string, value: number, element = 0): void {
  const ck = Checkpoint.open(dir);
  const t = ck.tensor(tensor);
  assert.equal(t.dtype, 'F32');
  const fd = fs.openSync(t.file, 'r+');
  const b = Buffer.alloc(4);
  b.writeFloatLE(value);
  fs.writeSync(fd, b, 0, 4, t.fileOffset + 4 * element);
  fs.closeSync(fd);
}

test('non-finite router logits or outputs are an error naming the layer and the tensor, never a NaN% result', async () => {
  // A NaN weight is refused by name when the graph is built (ONNX Runtime can turn it into finite garbage).
  for (const tensor of ['model.layers.1.self_attn.q_proj.weight', 'model.layers.0.mlp.gate.weight', 'model.layers.1.mlp.experts.3.down_proj.weight']) {
    const nanWeight = copyModel();
    poke(nanWeight, tensor, tensor.includes('gate') ? Infinity : NaN);
    const msg = await traceError(nanWeight);
    assert.ok(msg.includes(`checkpoint tensor "${tensor}" holds ${tensor.includes('gate') ? 'Infinity' : 'NaN'} at element 0`), msg);
  }

  // Every weight finite, yet the arithmetic overflows: the message says where to look instead.
  const overflow = copyModel();
  const ck = Checkpoint.open(overflow);
  const router = ck.tensor('model.layers.0.mlp.gate.weight');
  const huge = Buffer.alloc(router.byteLength);
  for (let i = 0; i < huge.length; i += 4) huge.writeFloatLE(3e38, i);
  const fd = fs.openSync(router.file, 'r+');
  fs.writeSync(fd, huge, 0, huge.length, router.fileOffset);
  fs.closeSync(fd);
  const msg = await traceError(overflow);
  assert.match(msg, /the router logits of layer 0 \(tensor router_logits_0\) are not finite: -?Infinity for token \d+, expert \d+/);
  assert.match(msg, /no checkpoint weight up to that layer is NaN or infinite, so the computation itself overflowed/);
});

for (const precision of ['int8', 'int4'] as const) {
  test(`${precision}: a non-finite weight is refused by tensor, file and element while the quantisation workers run, whichever matrix of an expert holds it`, async () => {
    for (const [tensor, value, element] of [
      ['model.layers.1.self_attn.q_proj.weight', NaN, 0],
      ['model.layers.1.mlp.experts.3.down_proj.weight', NaN, 5],
      ['model.layers.0.mlp.experts.2.up_proj.weight', Infinity, 0],
      ['model.layers.0.mlp.experts.1.gate_proj.weight', -Infinity, 9],
    ] as const) {
      const dir = copyModel();
      poke(dir, tensor, value, element);
      const msg = await traceError(dir, precision);
      const file = Checkpoint.open(dir).tensor(tensor).file;
      assert.ok(msg.startsWith(`${file}: checkpoint tensor "${tensor}" holds ${value} at element ${element}`), msg);
    }
  });
}

async function traceError(dir: string, precision: PrecisionSetting = 'auto'): Promise<string> {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache'), precision });
    await engine.trace({ text: 'The cell membrane regulates' }, { includeProbs: true, includeLastLogits: true });
  } catch (e) {
    assert.ok(e instanceof EngineFailure, `expected an EngineFailure, got ${e}`);
    assert.equal(e.code, 'non-finite');
    return e.message;
  } finally {
    await engine.dispose();
  }
  assert.fail(`tracing ${dir} should have failed`);
}
