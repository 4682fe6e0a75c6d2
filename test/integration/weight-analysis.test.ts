/**
 * Static weight analysis: planted structure (identical, scaled, negated, orthogonal experts; routers built
 * from or independent of the experts), agreement with a plain full-vector computation, invariance under
 * storage dtype / packed layout / sharding / chunk size, cancellation and the result cache.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import { writeSafetensors, type TensorToWrite } from '../../src/engines/onnxruntime/formats/safetensors';
import { bf16ToF32, f32ToBf16 } from '../../src/engines/onnxruntime/formats/dtypes';
import { SeededRandom } from '../../src/engines/onnxruntime/demo/random';
import { EngineFailure } from '../../src/shared/protocol';
import {
  analyzeCheckpointWeights,
  cachedWeightAnalysis,
  type CheckpointWeightAnalysis,
  type LayerWeightAnalysis,
} from '../../src/engines/onnxruntime/weightAnalysis';
import { pairRegression } from '../../src/analysis/pairStats';
import { makeModel, tempDir } from '../support/models';

const dirs: string[] = [];
const scratch = (name: string) => {
  const d = tempDir(name);
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// E = 16 experts of gate/up [8, 16] and down [16, 8]: 128 values per matrix.
const H = 16;
const I = 8;
const E = 16;
const N = H * I;
const olmoeBase = makeModel(
  { family: 'olmoe', vocabSize: 300, seed: 'weight-analysis', overrides: { hidden: H, layers: 2, heads: 2, kvHeads: 2, experts: E, topK: 4, intermediate: I } },
  scratch('wa-olmoe'),
);

// ---------------------------------------------------------------------------------------------------
// Checkpoint rewriting

interface T {
  shape: number[];
  data: Float32Array;
}

function readAll(dir: string): Map<string, T> {
  const ck = Checkpoint.open(dir);
  const out = new Map<string, T>();
  for (const f of ck.files) for (const [name, info] of f.tensors) out.set(name, { shape: info.shape, data: f.readFloat32(name) });
  return out;
}

interface WriteOptions {
  dtype?: 'F32' | 'BF16' | 'F16';
  packed?: boolean;
  shards?: number;
}

/** A copy of `from` (config, tokenizer) with the given tensors, stored as asked. */
function writeModel(from: string, tensors: Map<string, T>, opts: WriteOptions = {}): string {
  const dir = scratch('wa-model');
  for (const f of fs.readdirSync(from)) {
    if (!f.endsWith('.safetensors') && f !== 'model.safetensors.index.json') fs.copyFileSync(path.join(from, f), path.join(dir, f));
  }
  let list = [...tensors.entries()].map(([name, t]) => ({ name, ...t }));
  if (opts.packed) {
    const cfg = JSON.parse(fs.readFileSync(path.join(from, 'config.json'), 'utf8'));
    const [h, inter, experts, layers] = [cfg.hidden_size, cfg.intermediate_size, cfg.num_experts, cfg.num_hidden_layers];
    list = list.filter((t) => !/\.mlp\.experts\.\d+\./.test(t.name));
    for (let l = 0; l < layers; l++) {
      const p = `model.layers.${l}.mlp.experts`;
      const gateUp = new Float32Array(experts * 2 * inter * h);
      const down = new Float32Array(experts * h * inter);
      for (let e = 0; e < experts; e++) {
        gateUp.set(tensors.get(`${p}.${e}.gate_proj.weight`)!.data, e * 2 * inter * h);
        gateUp.set(tensors.get(`${p}.${e}.up_proj.weight`)!.data, e * 2 * inter * h + inter * h);
        down.set(tensors.get(`${p}.${e}.down_proj.weight`)!.data, e * h * inter);
      }
      list.push({ name: `${p}.gate_up_proj`, shape: [experts, 2 * inter, h], data: gateUp });
      list.push({ name: `${p}.down_proj`, shape: [experts, h, inter], data: down });
    }
  }
  const dtype = opts.dtype ?? 'F32';
  const toWrite: TensorToWrite[] = list.map((t) => ({ name: t.name, dtype, shape: t.shape, data: t.data }));
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    writeSafetensors(path.join(dir, 'model.safetensors'), toWrite);
  } else {
    const per = Math.ceil(toWrite.length / shards);
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const name = `model-${s + 1}-of-${shards}.safetensors`;
      const part = toWrite.slice(s * per, (s + 1) * per);
      writeSafetensors(path.join(dir, name), part);
      for (const t of part) weightMap[t.name] = name;
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
  }
  return dir;
}

const expertName = (l: number, e: number, m: 'gate' | 'up' | 'down') => `model.layers.${l}.mlp.experts.${e}.${m}_proj.weight`;
const routerName = (l: number) => `model.layers.${l}.mlp.gate.weight`;
const MATS = ['gate', 'up', 'down'] as const;

// ---------------------------------------------------------------------------------------------------
// The independent computation: whole vectors from Checkpoint.readExpert, textbook formulas, plain loops.

function cosPlain(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? 0 : dot / Math.sqrt(na * nb);
}

function means(w: Float32Array, rows: number, cols: number, axis: 'row' | 'col'): number[] {
  if (axis === 'row') return Array.from({ length: rows }, (_, r) => w.slice(r * cols, (r + 1) * cols).reduce((a, b) => a + b, 0) / cols);
  return Array.from({ length: cols }, (_, c) => {
    let s = 0;
    for (let r = 0; r < rows; r++) s += w[r * cols + c];
    return s / rows;
  });
}

function referenceLayer(dir: string, layer: number) {
  const ck = Checkpoint.open(dir);
  const { numExperts: n, hiddenSize: h, expertIntermediate: inter } = ck.arch;
  const ex = Array.from({ length: n }, (_, e) => ck.readExpert(layer, e));
  const all = ex.map((x) => [...x.gate, ...x.up, ...x.down]);
  const router = ck.readFloat32(ck.names.layer(layer).router);
  const rows = Array.from({ length: n }, (_, e) => router.slice(e * h, (e + 1) * h));
  const mat = (vecs: ArrayLike<number>[]) => {
    const m: number[] = [];
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m.push(cosPlain(vecs[i], vecs[j]));
    return m;
  };
  const cos = {
    gate: mat(ex.map((x) => x.gate)),
    up: mat(ex.map((x) => x.up)),
    down: mat(ex.map((x) => x.down)),
    all: mat(all),
    router: mat(rows),
    neuronRowMean: mat(ex.map((x) => means(x.gate, inter, h, 'row'))),
    neuronColMean: mat(ex.map((x) => means(x.gate, inter, h, 'col'))),
    upRow: mat(ex.map((x) => means(x.up, inter, h, 'row'))),
    upCol: mat(ex.map((x) => means(x.up, inter, h, 'col'))),
    downRow: mat(ex.map((x) => means(x.down, h, inter, 'row'))),
    downCol: mat(ex.map((x) => means(x.down, h, inter, 'col'))),
  };
  // R^2 from the fitted line's residuals (not from the correlation the module uses).
  const xs: number[] = [];
  const ys: number[] = [];
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      xs.push(cos.all[i * n + j]);
      ys.push(cos.router[i * n + j]);
    }
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const slope = xs.reduce((a, x, k) => a + (x - mx) * (ys[k] - my), 0) / xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const intercept = my - slope * mx;
  const ssRes = ys.reduce((a, y, k) => a + (y - intercept - slope * xs[k]) ** 2, 0);
  const ssTot = ys.reduce((a, y) => a + (y - my) ** 2, 0);
  const offMean = (m: number[]) => {
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) s += m[i * n + j];
    return s / (n * (n - 1));
  };
  const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((a, x) => a + x * x, 0));
  return {
    cos,
    r2: 1 - ssRes / ssTot,
    slope,
    intercept,
    offMean,
    norms: { gate: ex.map((x) => norm(x.gate)), up: ex.map((x) => norm(x.up)), down: ex.map((x) => norm(x.down)), router: rows.map(norm) },
  };
}

function close(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol, `${what}[${i}]: ${actual[i]} vs ${expected[i]} (tolerance ${tol})`);
  }
}

function assertMatchesReference(got: LayerWeightAnalysis, dir: string, tol = 1e-9): void {
  const ref = referenceLayer(dir, got.layer);
  const L = `layer ${got.layer}`;
  close(got.gate, ref.cos.gate, tol, `${L} gate`);
  close(got.up, ref.cos.up, tol, `${L} up`);
  close(got.down, ref.cos.down, tol, `${L} down`);
  close(got.all, ref.cos.all, tol, `${L} all`);
  close(got.router, ref.cos.router, tol, `${L} router`);
  close(got.neuronRowMean, ref.cos.neuronRowMean, tol, `${L} neuronRowMean`);
  close(got.neuronColMean, ref.cos.neuronColMean, tol, `${L} neuronColMean`);
  close(got.neuronUp.rowMean, ref.cos.upRow, tol, `${L} up rowMean`);
  close(got.neuronUp.colMean, ref.cos.upCol, tol, `${L} up colMean`);
  close(got.neuronDown.rowMean, ref.cos.downRow, tol, `${L} down rowMean`);
  close(got.neuronDown.colMean, ref.cos.downCol, tol, `${L} down colMean`);
  close([got.routerVsExpertR2, got.routerVsExpertFit.slope, got.routerVsExpertFit.intercept], [ref.r2, ref.slope, ref.intercept], 1e-8, `${L} fit`);
  const n = Math.round(Math.sqrt(got.all.length));
  assert.equal(got.routerVsExpertFit.pairs, (n * (n - 1)) / 2);
  for (const k of ['gate', 'up', 'down', 'all', 'router'] as const) close([got.meanOffDiagonal[k]], [ref.offMean(ref.cos[k])], tol, `${L} mean ${k}`);
  close(
    [got.meanOffDiagonal.neuronRowMean, got.meanOffDiagonal.neuronColMean],
    [ref.offMean(ref.cos.neuronRowMean), ref.offMean(ref.cos.neuronColMean)],
    tol,
    `${L} mean neuron`,
  );
  for (const k of ['gate', 'up', 'down', 'router'] as const) close(got.norms[k], ref.norms[k], 1e-6 * Math.max(...ref.norms[k]), `${L} norms ${k}`);
}

const at = (m: number[], i: number, j: number, n = E) => m[i * n + j];

function assertSameLayers(a: CheckpointWeightAnalysis, b: CheckpointWeightAnalysis, tol: number, what: string): void {
  assert.equal(a.layers.length, b.layers.length);
  for (let i = 0; i < a.layers.length; i++) {
    const x = a.layers[i];
    const y = b.layers[i];
    assert.equal(x.layer, y.layer);
    for (const k of ['gate', 'up', 'down', 'all', 'router', 'neuronRowMean', 'neuronColMean'] as const) close(x[k], y[k], tol, `${what} layer ${x.layer} ${k}`);
    close(x.neuronDown.colMean, y.neuronDown.colMean, tol, `${what} down colMean`);
    close([x.routerVsExpertR2], [y.routerVsExpertR2], tol, `${what} R2`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Planted structure in layer 0, planted router/expert relation in layer 1.

const rng = SeededRandom.fromString('planted');
const planted = readAll(olmoeBase);
{
  const get = (e: number, m: (typeof MATS)[number]) => planted.get(expertName(0, e, m))!.data;
  for (const m of MATS) {
    get(1, m).set(get(0, m)); // 1 = 0
    get(2, m).set(get(3, m).map((v) => 5 * v)); // 2 = 5 * 3
    get(4, m).set(get(5, m).map((v) => -v)); // 4 = -5
    // 6 and 7 live on disjoint halves of the flattened index range (even / odd positions).
    get(6, m).forEach((_, i, a) => (i % 2 === 1 ? (a[i] = 0) : undefined));
    get(7, m).forEach((_, i, a) => (i % 2 === 0 ? (a[i] = 0) : undefined));
    // 9 := 9 minus its projection on 8 (Gram-Schmidt), per matrix.
    const a = get(8, m);
    const b = get(9, m);
    let ab = 0,
      aa = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
    }
    for (let i = 0; i < a.length; i++) b[i] -= (ab / aa) * a[i];
  }
  const r0 = planted.get(routerName(0))!.data;
  r0.copyWithin(1 * H, 0, H); // router row 1 = row 0

  // Layer 1: every matrix and router row is C[e, idx % 4] * (random sign), so expert "all" Gram and router
  // Gram are both proportional to C C^T and their cosines coincide: R^2 must be 1.
  const K = 4;
  const C = Array.from({ length: E }, () => Array.from({ length: K }, () => 0.3 + rng.normal()));
  for (const m of MATS) {
    const signs = Array.from({ length: N }, () => (rng.uniform() < 0.5 ? -1 : 1));
    for (let e = 0; e < E; e++) planted.get(expertName(1, e, m))!.data.forEach((_, i, arr) => (arr[i] = C[e][i % K] * signs[i]));
  }
  const rsigns = Array.from({ length: H }, () => (rng.uniform() < 0.5 ? -1 : 1));
  planted.get(routerName(1))!.data.forEach((_, i, arr) => (arr[i] = C[Math.floor(i / H)][(i % H) % K] * rsigns[i % H]));
}
const plantedDir = writeModel(olmoeBase, planted);
const plantedResult = analyzeCheckpointWeights(Checkpoint.open(plantedDir));

test('identical experts have cosine 1 in gate, up, down, all and neuron means; identical router rows too', async () => {
  const l0 = (await plantedResult).layers[0];
  for (const k of ['gate', 'up', 'down', 'all', 'neuronRowMean', 'neuronColMean'] as const) {
    assert.ok(Math.abs(at(l0[k], 0, 1) - 1) < 1e-12, `${k}: ${at(l0[k], 0, 1)}`);
    assert.equal(at(l0[k], 0, 1), at(l0[k], 1, 0), `${k} is symmetric`);
  }
  assert.ok(Math.abs(at(l0.router, 0, 1) - 1) < 1e-12);
  // Unplanted pairs of 128 random values are far from 1 (guards against a matrix of all ones).
  assert.ok(Math.abs(at(l0.all, 0, 10)) < 0.5, `random pair: ${at(l0.all, 0, 10)}`);
  assert.ok(Math.abs(at(l0.router, 0, 2)) < 0.8);
  for (let e = 0; e < E; e++) assert.ok(Math.abs(at(l0.all, e, e) - 1) < 1e-12, `diagonal ${e}`);
});

test('scaling an expert by 5 keeps cosine 1 (scale invariance) while its norms grow 5x; negation gives -1', async () => {
  const l0 = (await plantedResult).layers[0];
  for (const k of ['gate', 'up', 'down', 'all', 'neuronRowMean', 'neuronColMean'] as const) {
    assert.ok(Math.abs(at(l0[k], 2, 3) - 1) < 1e-12, `scaled ${k}: ${at(l0[k], 2, 3)}`);
    assert.ok(Math.abs(at(l0[k], 4, 5) + 1) < 1e-12, `negated ${k}: ${at(l0[k], 4, 5)}`);
  }
  for (const m of MATS) assert.ok(Math.abs(l0.norms[m][2] / l0.norms[m][3] - 5) < 1e-6, `norm ratio ${m}`);
});

test('experts with disjoint support, or made orthogonal by Gram-Schmidt, have cosine 0', async () => {
  const l0 = (await plantedResult).layers[0];
  for (const k of ['gate', 'up', 'down', 'all'] as const) {
    assert.equal(at(l0[k], 6, 7), 0, `disjoint ${k}`);
    assert.ok(Math.abs(at(l0[k], 8, 9)) < 1e-6, `Gram-Schmidt ${k}: ${at(l0[k], 8, 9)}`);
    assert.ok(Math.abs(at(l0[k], 6, 8)) > 1e-3, `an unrelated pair is not 0 by accident (${k})`);
  }
  // gate is [8, 16]: even flattened positions are even columns, so the column means are disjoint too...
  assert.equal(at(l0.neuronColMean, 6, 7), 0);
  // ...while each row mixes both halves, so the row means are not orthogonal.
  assert.ok(Math.abs(at(l0.neuronRowMean, 6, 7)) > 1e-3);
});

test('R^2 of router vs expert similarity is ~1 when router rows are built from the experts, ~0 for an independent router', async () => {
  const l1 = (await plantedResult).layers[1];
  assert.ok(l1.routerVsExpertR2 > 0.999999, `planted R^2 = ${l1.routerVsExpertR2}`);
  assert.ok(Math.abs(l1.routerVsExpertFit.slope - 1) < 1e-6 && Math.abs(l1.routerVsExpertFit.intercept) < 1e-6, JSON.stringify(l1.routerVsExpertFit));
  close(l1.router, l1.all, 1e-9, 'router cos equals expert cos');
  // The planted similarities really spread out (otherwise R^2 would be a degenerate 0/0).
  const off = l1.all.filter((_, i) => i % (E + 1) !== 0);
  assert.ok(Math.max(...off) - Math.min(...off) > 1, `spread ${Math.min(...off)}..${Math.max(...off)}`);

  const independent = readAll(plantedDir);
  const r = SeededRandom.fromString('independent router');
  independent.get(routerName(1))!.data.set(r.normals(E * H, 1));
  const dir = writeModel(olmoeBase, independent);
  const l1i = (await analyzeCheckpointWeights(Checkpoint.open(dir), [1])).layers[0];
  close(l1i.all, l1.all, 0, 'same experts');
  assert.ok(l1i.routerVsExpertR2 < 0.05, `independent R^2 = ${l1i.routerVsExpertR2}`);
});

test('every field matches a plain full-vector computation (OLMoE, planted and random layers)', async () => {
  const res = await plantedResult;
  assert.equal(res.numExperts, E);
  assert.equal(res.modelPath, path.resolve(plantedDir));
  for (const l of res.layers) assertMatchesReference(l, plantedDir);
  const random = await analyzeCheckpointWeights(Checkpoint.open(olmoeBase));
  for (const l of random.layers) assertMatchesReference(l, olmoeBase);
  assert.deepEqual(res.byDepth.layer, [0, 1]);
  assert.deepEqual(
    res.byDepth.all,
    res.layers.map((l) => l.meanOffDiagonal.all),
  );
  assert.deepEqual(
    res.byDepth.routerVsExpertR2,
    res.layers.map((l) => l.routerVsExpertR2),
  );
});

test('Mixtral names (w1/w3/w2, block_sparse_moe) and an expert count that is not a multiple of 4', async () => {
  const dir = makeModel(
    {
      family: 'mixtral',
      vocabSize: 300,
      seed: 'weight-analysis-mixtral',
      overrides: { hidden: 16, layers: 2, heads: 4, kvHeads: 2, experts: 6, topK: 2, intermediate: 12 },
    },
    scratch('wa-mixtral'),
  );
  const res = await analyzeCheckpointWeights(Checkpoint.open(dir), undefined, undefined, undefined, { chunkElements: 50 });
  assert.equal(res.numExperts, 6);
  for (const l of res.layers) {
    assert.equal(l.all.length, 36);
    assertMatchesReference(l, dir);
  }
});

test('chunk size does not change the result (chunks straddling rows, single values, whole matrix)', async () => {
  const ck = Checkpoint.open(plantedDir);
  const whole = await plantedResult;
  for (const chunkElements of [1, 7, 37, N - 1, N, 10 * N]) {
    const r = await analyzeCheckpointWeights(ck, undefined, undefined, undefined, { chunkElements });
    assertSameLayers(r, whole, 1e-12, `chunk ${chunkElements}`);
    for (const l of r.layers) assertMatchesReference(l, plantedDir);
  }
});

test('F32, BF16 and F16 storage, packed experts and sharded files give the same numbers', async () => {
  // Values that bf16 and f16 both hold exactly, so every storage must yield identical inputs.
  const exact = readAll(plantedDir);
  for (const t of exact.values()) {
    for (let i = 0; i < t.data.length; i++) {
      const v = bf16ToF32(f32ToBf16(t.data[i]));
      t.data[i] = Math.abs(v) < 2 ** -12 || Math.abs(v) > 60000 ? 0 : v;
    }
  }
  const ref = writeModel(olmoeBase, exact);
  const refResult = await analyzeCheckpointWeights(Checkpoint.open(ref));
  for (const l of refResult.layers) assertMatchesReference(l, ref);
  const variants: [string, WriteOptions][] = [
    ['bf16', { dtype: 'BF16' }],
    ['f16', { dtype: 'F16' }],
    ['packed f32', { packed: true }],
    ['packed bf16 in 3 shards', { packed: true, dtype: 'BF16', shards: 3 }],
    ['per-expert f16 in 4 shards', { dtype: 'F16', shards: 4 }],
  ];
  for (const [what, opts] of variants) {
    const dir = writeModel(olmoeBase, exact, opts);
    const ck = Checkpoint.open(dir);
    assert.equal(ck.expertLayout, opts.packed ? 'packed' : 'per-expert', what);
    const r = await analyzeCheckpointWeights(ck, undefined, undefined, undefined, { chunkElements: 45 });
    assertSameLayers(r, refResult, 1e-12, what);
    for (const l of r.layers) assertMatchesReference(l, dir);
  }
  // Plain rounding to bf16 moves cosines only slightly: the decoded values are used, not reinterpreted bytes.
  const lossy = writeModel(olmoeBase, readAll(olmoeBase), { dtype: 'BF16' });
  const a = await analyzeCheckpointWeights(Checkpoint.open(lossy));
  const b = await analyzeCheckpointWeights(Checkpoint.open(olmoeBase));
  assertSameLayers(a, b, 0.02, 'bf16 vs f32');
});

test('worker threads give the same numbers as the calling thread (F32, BF16, F16, packed; uneven splits)', async () => {
  const whole = await plantedResult;
  const variants: [string, string][] = [
    ['f32', plantedDir],
    ['bf16', writeModel(olmoeBase, planted, { dtype: 'BF16' })],
    ['f16 packed', writeModel(olmoeBase, planted, { dtype: 'F16', packed: true })],
  ];
  for (const [what, dir] of variants) {
    const ck = Checkpoint.open(dir);
    const single = await analyzeCheckpointWeights(ck, undefined, undefined, undefined, { threads: 1 });
    for (const l of single.layers) assertMatchesReference(l, dir);
    if (what === 'f32') assertSameLayers(single, whole, 0, 'threads 1 vs default');
    // These matrices fit in one tile, so some threads get no work and must contribute nothing.
    for (const [threads, chunkElements] of [
      [2, N],
      [3, 77],
    ]) {
      const r = await analyzeCheckpointWeights(ck, undefined, undefined, undefined, { threads, chunkElements });
      assertSameLayers(r, single, 1e-12, `${what}, ${threads} threads, chunk ${chunkElements}`);
    }
  }
  // Larger matrices so that chunks really span several tiles per thread: gate [64, 200] = 12800 values.
  const wide = makeModel(
    {
      family: 'olmoe',
      vocabSize: 300,
      seed: 'weight-analysis-wide',
      overrides: { hidden: 200, layers: 1, heads: 2, kvHeads: 2, experts: 6, topK: 2, intermediate: 64 },
    },
    scratch('wa-wide'),
  );
  const ck = Checkpoint.open(wide);
  const one = await analyzeCheckpointWeights(ck, undefined, undefined, undefined, { threads: 1, chunkElements: 5000 });
  assertMatchesReference(one.layers[0], wide);
  const three = await analyzeCheckpointWeights(ck, undefined, undefined, undefined, { threads: 3, chunkElements: 5000 });
  assertSameLayers(three, one, 1e-12, 'wide, 3 threads');
  const cancel = new AbortController();
  const p = analyzeCheckpointWeights(ck, undefined, cancel.signal, undefined, { threads: 2, chunkElements: 2048 });
  cancel.abort();
  await assert.rejects(p, (e: unknown) => e instanceof EngineFailure && e.code === 'cancelled');
});

test('layer subsets, bad layer numbers, progress and cancellation', async () => {
  const ck = Checkpoint.open(plantedDir);
  const only1 = await analyzeCheckpointWeights(ck, [1, 1]);
  assert.deepEqual(
    only1.layers.map((l) => l.layer),
    [1],
  );
  assertSameLayers(only1, { ...(await plantedResult), layers: [(await plantedResult).layers[1]] }, 0, 'subset');

  for (const bad of [[2], [-1], [0.5]]) {
    await assert.rejects(
      analyzeCheckpointWeights(ck, bad),
      (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input' && /layers 0\.\.1/.test(e.message),
    );
  }

  const seen: number[] = [];
  await analyzeCheckpointWeights(ck, [1, 0], undefined, (l) => seen.push(l));
  assert.deepEqual(seen, [1, 0]);

  const cancelled = (e: unknown) => e instanceof EngineFailure && e.code === 'cancelled';
  const pre = new AbortController();
  pre.abort();
  await assert.rejects(analyzeCheckpointWeights(ck, undefined, pre.signal), cancelled);

  const afterFirst = new AbortController();
  const progress: number[] = [];
  await assert.rejects(
    analyzeCheckpointWeights(ck, undefined, afterFirst.signal, (l) => {
      progress.push(l);
      afterFirst.abort();
    }),
    cancelled,
  );
  assert.deepEqual(progress, [0]);

  // Aborted while a layer is being streamed (3 x 128 one-value chunks, each awaiting a read).
  const midLayer = new AbortController();
  const p = analyzeCheckpointWeights(ck, undefined, midLayer.signal, (l) => progress.push(l), { chunkElements: 1 });
  // Fires at the event loop's first check phase, i.e. after at most a read or two of layer 0.
  setImmediate(() => midLayer.abort());
  await assert.rejects(p, cancelled);
  assert.deepEqual(progress, [0], 'no layer finished after the mid-layer abort');
});

test('cache: second call is served from cacheDir; subsets add layers; a changed checkpoint or a torn file is recomputed', async () => {
  const dir = writeModel(olmoeBase, readAll(plantedDir));
  const cacheDir = scratch('wa-cache');
  const ck = Checkpoint.open(dir);
  const computed: number[] = [];
  const onProgress = (l: number) => computed.push(l);

  const only1 = await cachedWeightAnalysis(ck, cacheDir, [1], undefined, onProgress);
  assert.deepEqual(computed, [1]);
  assert.deepEqual(
    only1.layers.map((l) => l.layer),
    [1],
  );
  const files = fs.readdirSync(cacheDir);
  assert.equal(files.length, 1, `one cache file: ${files}`);

  const both = await cachedWeightAnalysis(ck, cacheDir, undefined, undefined, onProgress);
  assert.deepEqual(computed, [1, 0], 'only the missing layer is computed');
  const fresh = await analyzeCheckpointWeights(ck);
  assert.deepEqual(both.layers, fresh.layers);
  assert.deepEqual(both.byDepth, fresh.byDepth);

  const again = await cachedWeightAnalysis(Checkpoint.open(dir), cacheDir, undefined, undefined, onProgress);
  assert.deepEqual(computed, [1, 0], 'nothing recomputed');
  assert.deepEqual(again.layers, fresh.layers);

  // Same config and sizes, new mtime: the weights may have changed.
  const st = path.join(dir, 'model.safetensors');
  const later = new Date(Date.now() + 10_000);
  fs.utimesSync(st, later, later);
  await cachedWeightAnalysis(Checkpoint.open(dir), cacheDir, undefined, undefined, onProgress);
  assert.deepEqual(computed, [1, 0, 0, 1]);

  for (const f of fs.readdirSync(cacheDir)) fs.writeFileSync(path.join(cacheDir, f), '{"version": 1, "layers": [');
  const torn = await cachedWeightAnalysis(Checkpoint.open(dir), cacheDir, undefined, undefined, onProgress);
  assert.deepEqual(computed, [1, 0, 0, 1, 0, 1]);
  assert.deepEqual(torn.layers, fresh.layers);
});

test('pairRegression: exact line, noise-free constant, and a textbook example', () => {
  // 3 x 3 symmetric matrices, pairs (0,1), (0,2), (1,2).
  const x = [1, 0.1, 0.2, 0.1, 1, 0.4, 0.2, 0.4, 1];
  const y = x.map((v) => 3 * v - 1);
  const line = pairRegression(x, y, 3);
  assert.ok(Math.abs(line.r2 - 1) < 1e-12 && Math.abs(line.slope - 3) < 1e-12 && Math.abs(line.intercept + 1) < 1e-12, JSON.stringify(line));
  assert.equal(line.pairs, 3);
  assert.equal(
    pairRegression(
      x,
      x.map(() => 0.5),
      3,
    ).r2,
    0,
    'no variance in y',
  );
  assert.equal(
    pairRegression(
      x.map(() => 0.5),
      x,
      3,
    ).r2,
    0,
    'no variance in x',
  );
  // Pairs x = (1, 2, 3), y = (1, 3, 2): slope 0.5, intercept 1, R^2 = 0.25.
  const tx = [0, 1, 2, 1, 0, 3, 2, 3, 0];
  const ty = [0, 1, 3, 1, 0, 2, 3, 2, 0];
  const t = pairRegression(tx, ty, 3);
  assert.ok(Math.abs(t.slope - 0.5) < 1e-12 && Math.abs(t.intercept - 1) < 1e-12 && Math.abs(t.r2 - 0.25) < 1e-12, JSON.stringify(t));
});
