/**
 * WebGPU vs the ONNX Runtime CPU engine on one machine (run by bench/gpu/webgpu.sh; one run, wall-clock):
 *  (a) one MoE layer at OLMoE widths (hidden 2048, intermediate 1024, 64 experts, top-8) at 1/16/128/512
 *      tokens: the CPU's com.microsoft.MoE operator (float32) vs the WebGPU graph's two expert
 *      formulations, dense-gated and grouped (float32, and float16 where the adapter has shader-f16),
 *      with each one's output difference from the CPU;
 *  (b) a 600-token trace on an OLMoE-1B-7B-shaped checkpoint (MOE_GPU_CHECKPOINT), graph conversion
 *      included, on the first WEBGPU_BENCH_LAYERS layers (default 4 of 16, to fit the time budget):
 *      measured times and the full-depth extrapolation (x 16 / layers) are both written; WebGPU with the
 *      default formulation, the CPU engine, then (if the budget allows) WebGPU with the other one;
 *  (c) 5-shot MMLU-shaped scoring throughput: a 560-token few-shot prefix computed once, then batches of
 *      100-token questions through Engine.score (what the evaluation runner calls), with random token
 *      ids: the checkpoint has random weights, so only token counts matter.
 * GPU_BENCH_TINY=1: a generated demo checkpoint and small layer widths (tests the script here, on lavapipe).
 * Writes $OUT/webgpu.json (else bench/results/gpu-webgpu.json); exits non-zero if any part failed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxGraphBuilder } from '../../src/engines/onnxruntime/formats/onnxWriter';
import { fromFloat32 } from '../../src/engines/onnxruntime/formats/dtypes';
import { SeededRandom } from '../../src/engines/onnxruntime/demo/random';
import { makeDemoModel } from '../../src/engines/onnxruntime/demo/makeDemoModel';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { denseGatedExperts, groupedExperts } from '../../src/engines/onnxruntime/graphExpertsStandardOps';
import { probeWebGpu } from '../../src/engines/onnxruntime/webgpu';
import type { MoeArchitecture } from '../../src/engines/onnxruntime/families';
import type { ComputeDType, ExpertFormulation } from '../../src/shared/protocol';
import { WEBGPU_DEFAULT_EXPERTS } from '../../src/engines/onnxruntime/runtime';

const TINY = process.env.GPU_BENCH_TINY === '1';
const ROOT = process.cwd();
const OUT_FILE = process.env.OUT
  ? path.join(process.env.OUT, 'webgpu.json')
  : path.join(ROOT, 'bench', 'results', TINY ? 'gpu-webgpu-tiny.json' : 'gpu-webgpu.json');
const BUDGET_MS = Number(process.env.WEBGPU_BENCH_BUDGET_S ?? 170) * 1000;
const T0 = Date.now();
const elapsed = () => Date.now() - T0;
const log = (m: string) => process.stderr.write(`[webgpu-bench ${(elapsed() / 1000).toFixed(1)}s] ${m}\n`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn(); // warm-up: shader compilation, first allocation
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
}

// ----------------------------------------------------------------------------------- (a) one layer

interface LayerShape {
  H: number;
  I: number;
  E: number;
  K: number;
}

async function benchLayer(dir: string, s: LayerShape, tokenCounts: number[], f16: boolean) {
  const { H, I, E, K } = s;
  const rng = new SeededRandom(7);
  const gate = rng.normals(E * I * H, 0.02);
  const up = rng.normals(E * I * H, 0.02);
  const down = rng.normals(E * H * I, 0.02);
  const router = rng.normals(E * H, 0.02);
  // CPU MoE operator: fused SwiGLU, fc1 rows interleaved gate0, up0, gate1, up1, ...
  const fc1 = new Float32Array(2 * E * I * H);
  for (let r = 0; r < E * I; r++) {
    fc1.set(gate.subarray(r * H, (r + 1) * H), 2 * r * H);
    fc1.set(up.subarray(r * H, (r + 1) * H), (2 * r + 1) * H);
  }
  const files: Record<string, Uint8Array[]> = {
    'cpu.bin': [f32(fc1), f32(down), f32(router)],
    'gpu32.bin': [f32(gate), f32(up), f32(down), f32(router)],
  };
  if (f16) files['gpu16.bin'] = [gate, up, down, router].map((a) => fromFloat32(a, 'F16'));
  for (const [name, parts] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), Buffer.concat(parts));

  const refs = (file: string, sizes: number[], bytes: number) => {
    let off = 0;
    return sizes.map((n) => {
      const r = { location: file, offset: off, length: n * bytes };
      off += n * bytes;
      return r;
    });
  };
  {
    const g = new OnnxGraphBuilder('layer-cpu');
    const x = g.input('x', 'float32', ['n', H]);
    const [r1, r2, rr] = refs('cpu.bin', [2 * E * I * H, E * H * I, E * H], 4);
    const logits = g.op('Gemm', [x, g.external('router', 'float32', [E, H], rr)], { transB: 1 });
    const w1 = g.external('fc1', 'float32', [E, 2 * I, H], r1);
    const w2 = g.external('fc2', 'float32', [E, H, I], r2);
    g.op(
      'MoE',
      [x, logits, w1, '', w2],
      { k: K, activation_type: 'swiglu', swiglu_fusion: 1, normalize_routing_weights: 0 },
      { domain: 'com.microsoft', output: 'y' },
    );
    g.output('y', 'float32', ['n', H]);
    fs.writeFileSync(path.join(dir, 'cpu.onnx'), g.toBytes({ producer: 'moe-scope-bench' }));
  }
  const arch = { numExperts: E, expertIntermediate: I, topK: K, normTopKProb: false, hiddenSize: H } as MoeArchitecture;
  const variants: [ComputeDType, 'dense' | 'grouped'][] = [];
  for (const dtype of f16 ? (['float32', 'float16'] as const) : (['float32'] as const))
    for (const f of ['dense', 'grouped'] as const) variants.push([dtype, f]);
  for (const [dtype, formulation] of variants) {
    const g = new OnnxGraphBuilder(`layer-webgpu-${formulation}-${dtype}`);
    const x32 = g.input('x', 'float32', ['n', H]);
    const x = dtype === 'float32' ? x32 : g.op('Cast', [x32], { to: 10 });
    const [rg, ru, rd, rr] = refs(dtype === 'float32' ? 'gpu32.bin' : 'gpu16.bin', [E * I * H, E * I * H, E * H * I, E * H], dtype === 'float32' ? 4 : 2);
    // The same bytes: stacked [E*I, H] for the dense Gemms, [E, I, H] for the grouped batched MatMuls.
    const gateUpDims = formulation === 'dense' ? [E * I, H] : [E, I, H];
    g.external('w:experts.0.fc1', dtype, gateUpDims, rg);
    g.external('w:experts.0.fc3', dtype, gateUpDims, ru);
    g.external('w:experts.0.fc2', dtype, [E, H, I], rd);
    const logits = g.op('Gemm', [x, g.external('router', dtype, [E, H], rr)], { transB: 1 });
    const build = formulation === 'dense' ? denseGatedExperts : groupedExperts;
    const y = build(g, { layer: 0, x, routerLogits: logits, arch, dtype, output: dtype === 'float32' ? 'y' : undefined });
    if (dtype !== 'float32') g.op('Cast', [y], { to: 1 }, { output: 'y' });
    g.output('y', 'float32', ['n', H]);
    fs.writeFileSync(path.join(dir, `webgpu-${formulation}-${dtype}.onnx`), g.toBytes({ producer: 'moe-scope-bench' }));
  }
  const create = (file: string, eps: string[]) =>
    ort.InferenceSession.create(path.join(dir, file), { executionProviders: eps, graphOptimizationLevel: 'all', logSeverityLevel: 3 });
  const sessions: [string, ort.InferenceSession][] = [['cpuMoeOpF32', await create('cpu.onnx', ['cpu'])]];
  for (const [dtype, formulation] of variants) {
    const name = `webgpu${formulation === 'dense' ? 'Dense' : 'Grouped'}${dtype === 'float32' ? 'F32' : 'F16'}`;
    sessions.push([name, await create(`webgpu-${formulation}-${dtype}.onnx`, ['webgpu', 'cpu'])]);
  }
  const rows = [];
  for (const n of tokenCounts) {
    const x = new ort.Tensor('float32', rng.normals(n * H, 1), [n, H]);
    const row: Record<string, number> = { tokens: n };
    const outs: Record<string, Float32Array> = {};
    for (const [name, s] of sessions) {
      outs[name] = (await s.run({ x })).y.data as Float32Array;
      row[`${name}Ms`] = await time(() => s.run({ x }), n >= 128 ? 5 : 10);
    }
    const ref = outs.cpuMoeOpF32;
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    for (const [name] of sessions.slice(1)) {
      let d = 0;
      for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(outs[name][i] - ref[i]));
      if (!Number.isFinite(d)) throw new Error(`${name} produced non-finite output at ${n} tokens`);
      row[`${name}MaxAbsDiff`] = d;
    }
    row.outputMaxAbs = scale;
    for (const [name] of sessions.slice(1)) row[`${name}Speedup`] = row.cpuMoeOpF32Ms / row[`${name}Ms`];
    log(`layer ${n} tokens: ${JSON.stringify(row)}`);
    rows.push(row);
  }
  for (const [, s] of sessions) await s.release();
  return { shape: s, rows };
}

function f32(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// ------------------------------------------------------------------------ (b, c) trace and scoring

/**
 * A checkpoint with only the first `layers` layers: config rewritten and the safetensors files copied
 * without the tensors of later layers (the loader refuses a config that disagrees with the tensors, so
 * the files cannot simply be linked), the shard index filtered to match.
 */
function firstLayers(src: string, dst: string, layers: number): { dir: string; fullLayers: number } {
  const config = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  const fullLayers = config.num_hidden_layers as number;
  const keepLayers = Math.min(layers, fullLayers);
  const keep = (name: string) => {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    return !m || Number(m[1]) < keepLayers;
  };
  fs.mkdirSync(dst, { recursive: true });
  const kept = new Set<string>();
  for (const f of fs.readdirSync(src)) {
    const to = path.join(dst, f);
    fs.rmSync(to, { force: true });
    if (f.endsWith('.safetensors')) {
      if (copyTensors(path.join(src, f), to, keep)) kept.add(f);
    } else if (/\.json$/.test(f) && f !== 'config.json' && f !== 'model.safetensors.index.json') {
      fs.copyFileSync(path.join(src, f), to);
    }
  }
  const index = path.join(src, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    const idx = JSON.parse(fs.readFileSync(index, 'utf8')) as { metadata?: unknown; weight_map: Record<string, string> };
    const weightMap = Object.fromEntries(Object.entries(idx.weight_map).filter(([n, f]) => keep(n) && kept.has(f)));
    fs.writeFileSync(path.join(dst, 'model.safetensors.index.json'), JSON.stringify({ metadata: idx.metadata ?? {}, weight_map: weightMap }, null, 2));
  }
  fs.writeFileSync(path.join(dst, 'config.json'), JSON.stringify({ ...config, num_hidden_layers: keepLayers }, null, 2));
  if (!fs.existsSync(path.join(dst, 'tokenizer.json'))) {
    // Random-weight checkpoints may come without a tokenizer: borrow the demo model's (ids are random anyway).
    const demo = path.join(dst, '..', 'demo-tokenizer');
    if (!fs.existsSync(path.join(demo, 'tokenizer.json')))
      makeDemoModel(demo, { family: 'olmoe', corpusDir: path.join(ROOT, 'media', 'demo-data', 'mmlu'), overrides: { layers: 1, experts: 8, topK: 2 } });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(demo, f), path.join(dst, f));
  }
  return { dir: dst, fullLayers };
}

/** Copies the tensors of one safetensors file that `keep` accepts into a new file; false when none are kept. */
function copyTensors(src: string, dst: string, keep: (name: string) => boolean): boolean {
  const fd = fs.openSync(src, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8);
    const header = JSON.parse(headerBuf.toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    const names = Object.keys(header)
      .filter((n) => n !== '__metadata__' && keep(n))
      .sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
    if (names.length === 0) return false;
    const out: Record<string, unknown> = {};
    let offset = 0;
    for (const n of names) {
      const [b, e] = header[n].data_offsets;
      out[n] = { dtype: header[n].dtype, shape: header[n].shape, data_offsets: [offset, offset + (e - b)] };
      offset += e - b;
    }
    let json = JSON.stringify(out);
    json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
    const outFd = fs.openSync(dst, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      fs.writeSync(outFd, len);
      fs.writeSync(outFd, json);
      const chunk = Buffer.alloc(64 << 20);
      for (const n of names) {
        const [b, e] = header[n].data_offsets;
        for (let at = b; at < e;) {
          const got = fs.readSync(fd, chunk, 0, Math.min(chunk.length, e - at), 8 + headerLen + at);
          if (got <= 0) throw new Error(`${src}: short read in tensor ${n}`);
          fs.writeSync(outFd, chunk, 0, got);
          at += got;
        }
      }
    } finally {
      fs.closeSync(outFd);
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

function randomIds(rng: SeededRandom, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => 2 + Math.floor(rng.uniform() * (vocab - 2)));
}

async function benchModel(
  modelDir: string,
  cacheRoot: string,
  provider: 'webgpu' | 'cpu',
  experts: ExpertFormulation | undefined,
  opts: { traceTokens: number; prefix: number; suffix: number; batch: number; batches: number; reps: number },
) {
  const engine = new Engine((level, m) => level !== 'info' && log(m));
  const t0 = Date.now();
  const info = await engine.load(modelDir, {
    executionProvider: provider,
    cacheDir: path.join(cacheRoot, `${provider}-${experts ?? 'default'}`),
    webgpuExperts: experts,
  });
  const loadMs = Date.now() - t0;
  if (info.executionProvider !== provider) throw new Error(`${provider} fell back to ${info.executionProvider}: ${info.providerNote ?? ''}`);
  const rng = new SeededRandom(11);
  const vocab = Math.min(info.vocabSize, 50000);
  const ids = randomIds(rng, opts.traceTokens, vocab);
  const traceMs = await time(() => engine.trace({ ids }, { includeProbs: true, includeLastLogits: false }), opts.reps);
  const prefix = randomIds(rng, opts.prefix, vocab);
  const t1 = performance.now();
  await engine.score({ prefix: { key: 'bench', ids: prefix }, items: [{ key: 'warm', ids: randomIds(rng, opts.suffix, vocab) }] });
  const prefixMs = performance.now() - t1;
  let suffixTokens = 0;
  const t2 = performance.now();
  for (let b = 0; b < opts.batches; b++) {
    const items = Array.from({ length: opts.batch }, (_, i) => ({ key: `q${b}-${i}`, ids: randomIds(rng, opts.suffix, vocab) }));
    const r = await engine.score({ prefix: { key: 'bench', ids: prefix }, items });
    if (!r.prefixReused) throw new Error('the few-shot prefix was not reused');
    for (const it of r.items) if (!it.answerLogProbs.every(Number.isFinite)) throw new Error(`non-finite answer log-probabilities on ${provider}`);
    suffixTokens += opts.batch * opts.suffix;
  }
  const scoreMs = performance.now() - t2;
  await engine.dispose();
  return {
    provider,
    adapter: info.adapterName,
    dtype: info.dtype as ComputeDType,
    expertFormulation: info.expertFormulation,
    loadMsIncludingGraphConversion: loadMs,
    traceTokens: opts.traceTokens,
    traceMs,
    scoring: {
      note: `5-shot MMLU-shaped subset: one ${opts.prefix}-token few-shot prefix computed once (as the evaluation runner does per subject), then ${opts.batches} batch(es) of ${opts.batch} questions of ${opts.suffix} tokens through Engine.score; random token ids (random-weight checkpoint: only token counts matter)`,
      prefixTokens: opts.prefix,
      questionTokens: opts.suffix,
      batch: opts.batch,
      questions: opts.batch * opts.batches,
      prefixMs,
      questionTokensPerSecond: (suffixTokens / scoreMs) * 1000,
      questionsPerSecond: ((opts.batch * opts.batches) / scoreMs) * 1000,
    },
  };
}

// --------------------------------------------------------------------------------------------- main

async function main() {
  const result: Record<string, unknown> = {
    mode: TINY ? 'TINY (demo checkpoint, small layer widths; checks the script, numbers are not the target)' : 'full',
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      ort: ort.env.versions?.common,
    },
    errors: [] as string[],
  };
  const errors = result.errors as string[];
  const work = fs.mkdtempSync(path.join(process.env.MOE_BENCH_TMP ?? os.tmpdir(), 'moe-webgpu-bench-'));
  const adapter = await probeWebGpu();
  result.adapter = adapter;
  log(`adapter: ${JSON.stringify(adapter)}`);
  if (!adapter.ok) errors.push(`no WebGPU adapter: ${adapter.why}`);
  const f16 = !!adapter.shaderF16;
  const write = () => {
    result.totalSeconds = elapsed() / 1000;
    fs.mkdirSync(path.dirname(OUT_FILE), { recursive: true });
    fs.writeFileSync(OUT_FILE, JSON.stringify(result, null, 2) + '\n');
  };
  try {
    if (adapter.ok) {
      try {
        const shape = TINY ? { H: 256, I: 128, E: 64, K: 8 } : { H: 2048, I: 1024, E: 64, K: 8 };
        result.layer = await benchLayer(work, shape, TINY ? [1, 16, 128] : [1, 16, 128, 512], f16);
      } catch (e) {
        errors.push(`layer: ${(e as Error).message}`);
      }
      write();
      for (const f of fs.readdirSync(work)) if (f.endsWith('.bin')) fs.rmSync(path.join(work, f));

      let ckpt = process.env.MOE_GPU_CHECKPOINT;
      if (!ckpt) {
        if (!TINY) errors.push('MOE_GPU_CHECKPOINT is not set: the trace and scoring parts ran on the demo checkpoint');
        ckpt = path.join(work, 'demo-olmoe');
        makeDemoModel(ckpt, { family: 'olmoe', corpusDir: path.join(ROOT, 'media', 'demo-data', 'mmlu') });
      }
      const layers = Number(process.env.WEBGPU_BENCH_LAYERS ?? (TINY ? 8 : 4));
      const view = firstLayers(ckpt, path.join(work, 'model-view'), layers);
      const used = Math.min(layers, view.fullLayers);
      result.model = {
        checkpoint: ckpt,
        layersUsed: used,
        layersInCheckpoint: view.fullLayers,
        note:
          used < view.fullLayers
            ? `only the first ${used} of ${view.fullLayers} layers were run (time budget); "extrapolated" values scale the measured ones by ${view.fullLayers}/${used}`
            : 'all layers',
      };
      const runs: Record<string, unknown>[] = [];
      result.model = { ...(result.model as object), runs };
      const plan: { provider: 'webgpu' | 'cpu'; experts?: ExpertFormulation; optional?: boolean }[] = [
        { provider: 'webgpu' },
        { provider: 'cpu' },
        { provider: 'webgpu', experts: WEBGPU_DEFAULT_EXPERTS === 'grouped' ? 'dense-gated' : 'grouped', optional: true },
      ];
      for (const { provider, experts, optional } of plan) {
        if (optional && TINY) {
          result.skipped = `TINY: the ${experts} model run is skipped (lavapipe is slow; run WEBGPU_BENCH_LAYERS=2 without TINY to include it)`;
          continue;
        }
        if (elapsed() > BUDGET_MS * (optional ? 0.5 : 0.7) && !TINY) {
          const what = `${provider}${experts ? ` (${experts})` : ''} model run`;
          if (optional) result.skipped = `${what} skipped: ${Math.round(elapsed() / 1000)} s of the ${BUDGET_MS / 1000} s budget already used`;
          else errors.push(`${what} skipped: ${Math.round(elapsed() / 1000)} s of the ${BUDGET_MS / 1000} s budget already used`);
          continue;
        }
        try {
          const gpu = provider === 'webgpu';
          const r = await benchModel(view.dir, work, provider, experts, {
            traceTokens: 600,
            prefix: 560,
            suffix: 100,
            batch: gpu ? 32 : 8,
            batches: TINY ? 1 : gpu ? 3 : 1,
            reps: TINY ? 1 : 3,
          });
          const k = view.fullLayers / used;
          runs.push({
            ...r,
            extrapolatedFullDepth: {
              loadMsIncludingGraphConversion: r.loadMsIncludingGraphConversion * k,
              traceMs: r.traceMs * k,
              questionTokensPerSecond: r.scoring.questionTokensPerSecond / k,
            },
          });
          log(`${provider}: ${JSON.stringify(runs[runs.length - 1])}`);
        } catch (e) {
          errors.push(`${provider}${experts ? ` (${experts})` : ''} model run: ${(e as Error).message}`);
        }
        write();
      }
      const byP = Object.fromEntries(
        runs
          .filter((r) => r.provider === 'cpu' || r.expertFormulation === WEBGPU_DEFAULT_EXPERTS)
          .map((r) => [r.provider as string, r as unknown as Awaited<ReturnType<typeof benchModel>>]),
      );
      if (byP.webgpu && byP.cpu) {
        result.comparison = {
          traceSpeedup: byP.cpu.traceMs / byP.webgpu.traceMs,
          scoringSpeedup: byP.webgpu.scoring.questionTokensPerSecond / byP.cpu.scoring.questionTokensPerSecond,
          targets: 'issue 13: 600-token trace under 1 s at full depth; scoring at least 10x the CPU engine',
        };
      }
    }
  } finally {
    write();
    fs.rmSync(work, { recursive: true, force: true });
  }
  log(`wrote ${OUT_FILE}`);
  console.log(JSON.stringify(result, null, 2));
  if (errors.length) {
    log(`FAILED parts: ${errors.join(' | ')}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
