/**
 * Why int8's experts are one MatMulNBits pair per expert and int4's are QMoE without prepacking
 * (precision/prepareQuantized.ts, EXPERT_KERNEL): one MoE layer at OLMoE-1B-7B's widths (64 experts,
 * hidden 2048, intermediate 1024, top-8; random weights), every formulation side by side in one run, each
 * in its own session on the same inputs:
 *
 *   - the float32 MoE operator (what fp32 runs);
 *   - QMoE at 8 and 4 bits (the expert operator ONNX Runtime offers for quantised weights), with and
 *     without ONNX Runtime's prepacking (int4 runs it without);
 *   - per-expert MatMulNBits (int8's formulation) at accuracy_level 4 (int8 compute) and at accuracy_level 0
 *     (float32 compute on the dequantised weights), at 8 and 4 bits, and at accuracy_level 4 without
 *     prepacking.
 *
 * Per formulation and token count: median time of 5 calls after a warm-up, and the largest output
 * difference from the float operator on the same (undequantised) weights, relative to the output scale.
 * Every formulation renormalises the top-k weights (QMoE's CPU kernel always does).
 *
 *   node esbuild.mjs && node dist/bench/quantizedExperts.js
 *
 * Writes bench/results/quantized-experts.json. For a quick look: MOE_SCOPE_BENCH_EXPERTS (at least 8),
 * MOE_SCOPE_BENCH_TOKENS (comma-separated) and MOE_SCOPE_BENCH_NO_WRITE=1 (print only).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { machineInfo, writeResult, runBenchmark } from './common';
import { OnnxGraphBuilder } from '../src/engines/onnxruntime/formats/onnxWriter';
import { AppendFile } from '../src/engines/onnxruntime/weights';
import { quantizeRows, blockSizeFor, type QuantBits, type QuantizedMatrix } from '../src/engines/onnxruntime/precision/quantize';
import { quantizedExperts, type ComputeAccuracy } from '../src/engines/onnxruntime/precision/graphHooks';

const E = Number(process.env.MOE_SCOPE_BENCH_EXPERTS ?? 64);
const H = 2048;
const I = 1024;
const K = 8;
const TOKENS = Object.freeze(process.env.MOE_SCOPE_BENCH_TOKENS ? process.env.MOE_SCOPE_BENCH_TOKENS.split(',').map(Number) : [1, 177, 600]);
const CALLS = 5;

/** Appends float32 or byte arrays to one weight file (the cache builder's AppendFile). */
function weightFile(dir: string, name: string) {
  const f = new AppendFile(dir, name);
  return {
    add: (a: Uint8Array | Float32Array) => f.append(a instanceof Float32Array ? new Uint8Array(a.buffer, a.byteOffset, a.byteLength) : a),
    close: () => f.close(),
  };
}

function random(n: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = ((s >>> 8) / 16777216 - 0.5) * scale;
  }
  return out;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-bench-qexperts-'));
  try {
    await measure(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(dir: string): Promise<void> {
  // Per expert: gate [I, H], up [I, H], down [H, I]; scaled like a trained layer's (outputs of order 1).
  const gateUp: Float32Array[] = [];
  const down: Float32Array[] = [];
  for (let e = 0; e < E; e++) {
    gateUp.push(random(2 * I * H, 1 + e, 0.05));
    down.push(random(H * I, 1000 + e, 0.05));
  }
  const graphs: { name: string; file: string; noPrepacking?: boolean }[] = [];
  const write = (name: string, g: OnnxGraphBuilder, noPrepacking = false) => {
    const file = path.join(dir, `${name.replace(/[^\w]+/g, '_')}.onnx`);
    fs.writeFileSync(file, g.toBytes({ producer: 'bench' }));
    graphs.push({ name, file, noPrepacking });
  };
  const start = (name: string) => {
    const g = new OnnxGraphBuilder(name);
    g.input('x', 'float32', ['t', H]);
    g.input('r', 'float32', ['t', E]);
    g.output('y', 'float32', ['t', H]);
    return g;
  };

  // The float operator reads gate and up rows interleaved (its fused SwiGLU).
  const floats = weightFile(dir, 'float.bin');
  const fc1 = floats.add(concat(gateUp.map(interleave)));
  const fc2 = floats.add(concat(down));
  floats.close();
  const f = start('float32 MoE operator');
  f.external('fc1', 'float32', [E, 2 * I, H], fc1);
  f.external('fc2', 'float32', [E, H, I], fc2);
  f.op(
    'MoE',
    ['x', 'r', 'fc1', '', 'fc2'],
    { k: K, normalize_routing_weights: 1, activation_type: 'swiglu', swiglu_fusion: 1 },
    { domain: 'com.microsoft', output: 'y' },
  );
  write('float32 MoE operator', f);

  for (const bits of [8, 4] as QuantBits[]) {
    const block = blockSizeFor(I, bits)!;
    const q = (a: Float32Array, rows: number, cols: number): QuantizedMatrix => quantizeRows(a, rows, cols, bits, block);
    // QMoE: fc1 interleaved like the float operator; one block size for both.
    const qm = weightFile(dir, `qmoe${bits}.bin`);
    const q1 = gateUp.map((w) => q(interleave(w), 2 * I, H));
    const q2 = down.map((w) => q(w, H, I));
    const refs = {
      fc1: qm.add(concatBytes(q1.map((x) => x.packed))),
      s1: qm.add(concat(q1.map((x) => x.scales))),
      fc2: qm.add(concatBytes(q2.map((x) => x.packed))),
      s2: qm.add(concat(q2.map((x) => x.scales))),
    };
    qm.close();
    const g = start(`QMoE int${bits}`);
    g.external('fc1', 'uint8', [E, 2 * I, (H * bits) / 8], refs.fc1);
    g.external('s1', 'float32', [E, 2 * I, H / block], refs.s1);
    g.external('fc2', 'uint8', [E, H, (I * bits) / 8], refs.fc2);
    g.external('s2', 'float32', [E, H, I / block], refs.s2);
    const attrs = { k: K, normalize_routing_weights: 1, activation_type: 'swiglu', swiglu_fusion: 1, expert_weight_bits: bits, block_size: block };
    g.op('QMoE', ['x', 'r', 'fc1', 's1', '', 'fc2', 's2'], attrs, { domain: 'com.microsoft', output: 'y' });
    write(`QMoE int${bits}`, g);
    write(`QMoE int${bits}, no prepacking${bits === 4 ? ' (the product)' : ''}`, g, true);

    // The product's layout: per expert its gate rows, then its up rows (prepareQuantized.ts).
    const mb = weightFile(dir, `mnb${bits}.bin`);
    const p1 = gateUp.map((w) => q(w, 2 * I, H));
    const experts = {
      kernel: 'matmulnbits' as const,
      fc1: mb.add(concatBytes(p1.map((x) => x.packed))),
      fc1Scales: mb.add(concat(p1.map((x) => x.scales))),
      fc2: mb.add(concatBytes(q2.map((x) => x.packed))),
      fc2Scales: mb.add(concat(q2.map((x) => x.scales))),
      block,
    };
    mb.close();
    for (const accuracy of [4, 0] as ComputeAccuracy[]) {
      const name = `MatMulNBits per expert int${bits}, accuracy_level ${accuracy}${accuracy === 4 && bits === 8 ? ' (the product)' : ''}`;
      const m = start(name);
      quantizedExperts(m, {
        layer: 0,
        x: 'x',
        routerLogits: 'r',
        weights: { bits, linear: () => undefined, quantizedExperts: () => experts },
        numExperts: E,
        hiddenSize: H,
        intermediate: I,
        topK: K,
        normTopKProb: true,
        output: 'y',
        accuracy,
      });
      write(name, m);
      if (accuracy === 4) write(`MatMulNBits per expert int${bits}, accuracy_level 4, no prepacking`, m, true);
    }
  }
  gateUp.length = 0;
  down.length = 0;

  const inputs = TOKENS.map((t) => ({
    t,
    x: new ort.Tensor('float32', random(t * H, 7 + t, 4), [t, H]),
    r: new ort.Tensor('float32', random(t * E, 11 + t, 4), [t, E]),
  }));
  const reference = new Map<number, Float32Array>();
  const results: Record<string, unknown>[] = [];
  for (const { name, file, noPrepacking } of graphs) {
    const c0 = performance.now();
    const session = await ort.InferenceSession.create(file, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      ...(noPrepacking ? { extra: { session: { disable_prepacking: '1' } } } : {}),
    });
    const createMs = performance.now() - c0;
    const perTokens: Record<string, { ms: number; maxDiffRelative: number }> = {};
    for (const { t, x, r } of inputs) {
      const y = (await session.run({ x, r })).y.data as Float32Array;
      const times: number[] = [];
      for (let i = 0; i < CALLS; i++) {
        const s = performance.now();
        await session.run({ x, r });
        times.push(performance.now() - s);
      }
      if (!reference.has(t)) reference.set(t, y);
      perTokens[t] = { ms: round(median(times), 2), maxDiffRelative: Number(relativeDiff(y, reference.get(t)!).toPrecision(3)) };
    }
    await session.release();
    results.push({ name, sessionCreateMs: Math.round(createMs), tokens: perTokens });
    console.log(`${name}: ${JSON.stringify(perTokens)}`);
  }
  if (process.env.MOE_SCOPE_BENCH_NO_WRITE) return;
  writeResult('quantized-experts', {
    measuredAt: new Date().toISOString(),
    machine: machineInfo({
      loadAverage: os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(' / '),
    }),
    layer: { experts: E, hidden: H, intermediate: I, topK: K, calls: CALLS },
    results,
  });
}

function interleave(gateUp: Float32Array): Float32Array {
  const out = new Float32Array(2 * I * H);
  for (let r = 0; r < I; r++) {
    out.set(gateUp.subarray(r * H, (r + 1) * H), 2 * r * H);
    out.set(gateUp.subarray((I + r) * H, (I + r + 1) * H), (2 * r + 1) * H);
  }
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function relativeDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

function round(x: number, d: number): number {
  return Math.round(x * 10 ** d) / 10 ** d;
}

runBenchmark(main);
