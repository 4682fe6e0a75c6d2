/**
 * Engine benchmarks (one run; ratios are what to read, absolute numbers depend on the machine):
 *  (a) trace latency of a 600-token 5-shot MMLU prompt on the OLMoE-shaped demo model;
 *  (b) one MoE layer at OLMoE's real widths (hidden 2048, intermediate 1024, 64 experts, top-8) at 1, 16,
 *      128 and 512 tokens: our sparse com.microsoft.MoE graph vs a dense all-experts formulation, and the
 *      achieved GFLOP/s of active expert work vs a plain large MatMul on the same machine;
 *  (c) the cost of exposing every layer's router logits: the decoder graph with vs without that output.
 * Writes bench/results/engine.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxGraphBuilder } from '../src/engines/onnxruntime/formats/onnxWriter';
import { SeededRandom } from '../src/engines/onnxruntime/demo/random';
import { makeDemoModel } from '../src/engines/onnxruntime/demo/makeDemoModel';
import { Engine, ropeTables } from '../src/engines/onnxruntime/engine';
import { Checkpoint } from '../src/engines/onnxruntime/checkpoint';
import { createRuntime } from '../src/engines/onnxruntime/runtime';
import { buildPrompt } from '../src/mmlu/prompt';
import { loadDataset } from '../src/mmlu/load';
import { BENCH_ROOT, machineInfo, runBenchmark, writeResult } from './common';

const ROOT = BENCH_ROOT;
const quick = process.argv.includes('--quick');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(fn: () => Promise<unknown>, reps: number, warmup = 1): Promise<{ medianMs: number; minMs: number; runs: number }> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return { medianMs: median(t), minMs: Math.min(...t), runs: reps };
}

async function fiveShotPrompt(engine: Engine, tokens: number): Promise<number[]> {
  const data = path.join(ROOT, 'media', 'demo-data', 'mmlu');
  const test = (await loadDataset(data, { split: 'test' })).questions.filter((q) => q.subject === 'high_school_biology');
  const dev = (await loadDataset(data, { split: 'dev' })).questions.filter((q) => q.subject === 'high_school_biology');
  for (const q of test) {
    const ids = engine.tokenize([buildPrompt(q, dev, 5).text])[0].ids;
    // A real 5-shot prompt, cut to exactly `tokens` tokens from its end (keeping "Answer:" last).
    if (ids.length >= tokens) return ids.slice(ids.length - tokens);
  }
  throw new Error(`no 5-shot prompt reaches ${tokens} tokens`);
}

async function benchTrace(modelDir: string, cacheDir: string) {
  const engine = new Engine();
  await engine.load(modelDir, { executionProvider: 'cpu', cacheDir });
  const ids = await fiveShotPrompt(engine, 600);
  const r = await time(() => engine.trace({ ids }, { includeProbs: true, includeLastLogits: false }), quick ? 3 : 10);
  await engine.dispose();
  return { tokens: ids.length, ...r, tokensPerSecond: (ids.length / r.medianMs) * 1000 };
}

/** (c) The same decoder graph with and without the router_logits output, run directly on the session. */
async function benchRouterExposure(modelDir: string, cacheDir: string) {
  const ck = Checkpoint.open(modelDir);
  const engine = new Engine();
  await engine.load(modelDir, { executionProvider: 'cpu', cacheDir });
  const ids = await fiveShotPrompt(engine, 600);
  await engine.dispose();
  const T = ids.length;
  const a = ck.arch;
  const { cos, sin } = ropeTables(a, 1, T, 0);
  const bias = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) bias[i * T + j] = -1e9;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, T]),
    rope_cos: new ort.Tensor('float32', cos, [1, 1, T, a.headDim]),
    rope_sin: new ort.Tensor('float32', sin, [1, 1, T, a.headDim]),
    attention_bias: new ort.Tensor('float32', bias, [1, 1, T, T]),
    logits_index: new ort.Tensor('int64', BigInt64Array.from([BigInt(T - 1)]), [1]),
  };
  for (let l = 0; l < a.numLayers; l++) {
    feeds[`past_key_${l}`] = new ort.Tensor('float32', new Float32Array(0), [1, a.numKvHeads, 0, a.headDim]);
    feeds[`past_value_${l}`] = new ort.Tensor('float32', new Float32Array(0), [1, a.numKvHeads, 0, a.headDim]);
  }
  const out: Record<string, { medianMs: number; minMs: number; runs: number }> = {};
  const sessions: Record<string, ort.InferenceSession> = {};
  for (const expose of [false, true])
    sessions[String(expose)] = (await createRuntime(ck, { executionProvider: 'cpu', cacheDir, exposeRouter: expose })).session;
  // Interleave the two variants so that machine noise hits both alike.
  const reps = quick ? 5 : 20;
  const times: Record<string, number[]> = { false: [], true: [] };
  for (const s of Object.values(sessions)) await s.run(feeds, s.outputNames);
  for (let i = 0; i < reps; i++) {
    for (const k of ['false', 'true']) {
      const s = sessions[k];
      const t0 = performance.now();
      await s.run(
        feeds,
        s.outputNames.filter((n) => n === 'logits' || n.startsWith('router_logits_')),
      );
      times[k].push(performance.now() - t0);
    }
  }
  for (const k of ['false', 'true'])
    out[k === 'true' ? 'withRouter' : 'withoutRouter'] = { medianMs: median(times[k]), minMs: Math.min(...times[k]), runs: reps };
  for (const s of Object.values(sessions)) await s.release();
  return { tokens: T, ...out, overhead: out.withRouter.medianMs / out.withoutRouter.medianMs - 1 };
}

/** (b) One MoE layer at OLMoE's widths: the MoE operator vs all experts computed densely. */
async function benchMoeLayer(dir: string) {
  const H = 2048;
  const I = 1024;
  const E = 64;
  const K = 8;
  const rng = new SeededRandom(1);
  const fc1 = rng.normals(E * 2 * I * H, 0.02);
  const fc2 = rng.normals(E * H * I, 0.02);
  const router = rng.normals(E * H, 0.02);
  // The sparse graph wants [E, out, in]; the dense one MatMuls [E, in, out]: same numbers, transposed.
  fs.writeFileSync(path.join(dir, 'sparse.bin'), Buffer.concat([Buffer.from(fc1.buffer), Buffer.from(fc2.buffer), Buffer.from(router.buffer)]));
  const fc1t = new Float32Array(E * H * 2 * I);
  for (let e = 0; e < E; e++) for (let r = 0; r < 2 * I; r++) for (let c = 0; c < H; c++) fc1t[e * H * 2 * I + c * 2 * I + r] = fc1[e * 2 * I * H + r * H + c];
  const fc2t = new Float32Array(E * I * H);
  for (let e = 0; e < E; e++) for (let r = 0; r < H; r++) for (let c = 0; c < I; c++) fc2t[e * I * H + c * H + r] = fc2[e * H * I + r * I + c];
  fs.writeFileSync(path.join(dir, 'dense.bin'), Buffer.concat([Buffer.from(fc1t.buffer), Buffer.from(fc2t.buffer), Buffer.from(router.buffer)]));
  const bytes1 = fc1.byteLength;
  const bytes2 = fc2.byteLength;

  const sparse = new OnnxGraphBuilder('moe-sparse');
  {
    const x = sparse.input('x', 'float32', ['n', H]);
    const w1 = sparse.external('fc1', 'float32', [E, 2 * I, H], { location: 'sparse.bin', offset: 0, length: bytes1 });
    const w2 = sparse.external('fc2', 'float32', [E, H, I], { location: 'sparse.bin', offset: bytes1, length: bytes2 });
    const wr = sparse.external('router', 'float32', [E, H], { location: 'sparse.bin', offset: bytes1 + bytes2, length: router.byteLength });
    const logits = sparse.op('Gemm', [x, wr], { transB: 1 });
    sparse.op(
      'MoE',
      [x, logits, w1, '', w2],
      { k: K, activation_type: 'swiglu', swiglu_fusion: 1, normalize_routing_weights: 0 },
      { domain: 'com.microsoft', output: 'y' },
    );
    sparse.output('y', 'float32', ['n', H]);
  }
  fs.writeFileSync(path.join(dir, 'sparse.onnx'), sparse.toBytes({ producer: 'moe-scope-bench' }));

  const dense = new OnnxGraphBuilder('moe-dense');
  {
    const x = dense.input('x', 'float32', ['n', H]);
    const w1 = dense.external('fc1', 'float32', [E, H, 2 * I], { location: 'dense.bin', offset: 0, length: bytes1 });
    const w2 = dense.external('fc2', 'float32', [E, I, H], { location: 'dense.bin', offset: bytes1, length: bytes2 });
    const wr = dense.external('router', 'float32', [E, H], { location: 'dense.bin', offset: bytes1 + bytes2, length: router.byteLength });
    // Gate weights for every expert: softmax, zeroed outside the top-k (the same routing, computed densely).
    const probs = dense.op('Softmax', [dense.op('Gemm', [x, wr], { transB: 1 })], { axis: -1 });
    const [topv] = dense.opN('TopK', [probs, dense.constInt64([K])], 2, { axis: -1 });
    const kth = dense.op('Slice', [topv, dense.constInt64([K - 1]), dense.constInt64([K]), dense.constInt64([1])]);
    const mask = dense.op('Cast', [dense.op('GreaterOrEqual', [probs, kth])], { to: 1 });
    const gates = dense.op('Transpose', [dense.op('Mul', [probs, mask])], { perm: [1, 0] }); // [E, n]
    const h = dense.op('MatMul', [x, w1]); // [E, n, 2I], gate/up interleaved by row pairs in fc1
    const hr = dense.op('Reshape', [h, dense.constInt64([E, -1, I, 2])]);
    const gate = dense.op('Squeeze', [dense.op('Slice', [hr, dense.constInt64([0]), dense.constInt64([1]), dense.constInt64([3])]), dense.constInt64([3])]);
    const up = dense.op('Squeeze', [dense.op('Slice', [hr, dense.constInt64([1]), dense.constInt64([2]), dense.constInt64([3])]), dense.constInt64([3])]);
    const act = dense.op('Mul', [dense.op('Mul', [gate, dense.op('Sigmoid', [gate])]), up]);
    const y = dense.op('MatMul', [act, w2]); // [E, n, H]
    const weighted = dense.op('Mul', [y, dense.op('Unsqueeze', [gates, dense.constInt64([2])])]);
    dense.op('ReduceSum', [weighted, dense.constInt64([0])], { keepdims: 0 }, { output: 'y' });
    dense.output('y', 'float32', ['n', H]);
  }
  fs.writeFileSync(path.join(dir, 'dense.onnx'), dense.toBytes({ producer: 'moe-scope-bench' }));

  const matmul = new OnnxGraphBuilder('matmul');
  {
    const a = matmul.input('a', 'float32', ['n', H]);
    const b = matmul.input('b', 'float32', [H, 4 * I]);
    matmul.op('MatMul', [a, b], {}, { output: 'y' });
    matmul.output('y', 'float32', ['n', 4 * I]);
  }
  fs.writeFileSync(path.join(dir, 'matmul.onnx'), matmul.toBytes({ producer: 'moe-scope-bench' }));

  const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all', logSeverityLevel: 3 };
  const sSparse = await ort.InferenceSession.create(path.join(dir, 'sparse.onnx'), opts);
  const sDense = await ort.InferenceSession.create(path.join(dir, 'dense.onnx'), opts);
  const sMatmul = await ort.InferenceSession.create(path.join(dir, 'matmul.onnx'), opts);
  const b = new ort.Tensor('float32', rng.normals(H * 4 * I, 0.02), [H, 4 * I]);
  const rows = [];
  let maxDiff = 0;
  for (const n of quick ? [1, 16, 128] : [1, 16, 128, 512]) {
    const x = new ort.Tensor('float32', rng.normals(n * H, 1), [n, H]);
    const reps = n >= 128 ? (quick ? 2 : 5) : quick ? 5 : 20;
    const ySparse = (await sSparse.run({ x })).y.data as Float32Array;
    const yDense = (await sDense.run({ x })).y.data as Float32Array;
    for (let i = 0; i < ySparse.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ySparse[i] - yDense[i]));
    const tSparse = await time(() => sSparse.run({ x }), reps);
    const tDense = await time(() => sDense.run({ x }), Math.max(2, Math.floor(reps / 2)));
    const tMatmul = await time(() => sMatmul.run({ a: x, b }), reps);
    const activeFlops = n * K * (2 * H * 2 * I + 2 * I * H);
    const matmulFlops = 2 * n * H * 4 * I;
    rows.push({
      tokens: n,
      sparseMs: tSparse.medianMs,
      denseMs: tDense.medianMs,
      denseOverSparse: tDense.medianMs / tSparse.medianMs,
      activeGflops: activeFlops / 1e9,
      sparseGflopPerSecond: activeFlops / 1e6 / tSparse.medianMs,
      matmulGflopPerSecond: matmulFlops / 1e6 / tMatmul.medianMs,
      sparseVsMatmulEfficiency: activeFlops / tSparse.medianMs / (matmulFlops / tMatmul.medianMs),
    });
    console.error(`  MoE layer n=${n}: sparse ${tSparse.medianMs.toFixed(1)} ms, dense ${tDense.medianMs.toFixed(1)} ms`);
  }
  for (const s of [sSparse, sDense, sMatmul]) await s.release();
  return { hidden: H, intermediate: I, experts: E, topK: K, maxAbsDiffSparseVsDense: maxDiff, rows };
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-bench-'));
  try {
    const modelDir = path.join(work, 'demo-olmoe');
    makeDemoModel(modelDir, { family: 'olmoe', corpusDir: path.join(ROOT, 'media', 'demo-data', 'mmlu') });
    const cacheDir = path.join(work, 'cache');
    console.error('(a) trace latency, 600-token 5-shot prompt');
    const trace = await benchTrace(modelDir, cacheDir);
    console.error('(c) router output cost');
    const router = await benchRouterExposure(modelDir, cacheDir);
    console.error('(b) one MoE layer at OLMoE widths');
    const layer = await benchMoeLayer(work);
    const result = {
      date: new Date().toISOString(),
      machine: machineInfo({ ort: ort.env.versions?.common }),
      traceLatency: trace,
      routerExposure: router,
      moeLayer: layer,
    };
    writeResult('engine', result);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

runBenchmark(main);
