/**
 * ONNX Runtime's CPU kernels read this project's quantised layout as intended. The experts of
 * precision/graphHooks.ts on both kernels (int8's MatMulNBits per expert at accuracy_level 0, float32
 * compute; int4's QMoE), with both routing normalisations, experts that get no token and a single token,
 * equal the float MoE operator run on the dequantised weights, and MatMulNBits equals Gemm on them, to
 * float rounding, at 8 and 4 bits: the layout and the routing plumbing are exact. At accuracy_level 4, what the
 * product runs, the activations are quantised to int8 as well; that difference is bounded and printed.
 * This is what makes the routing differences precision.test.ts reports the precision's, not a layout error.
 * Also pins the kernel fact graphHooks.ts works around for QMoE: it renormalises the top-k weights even
 * with normalize_routing_weights=0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { OnnxGraphBuilder, type ExternalRef } from '../../src/engines/onnxruntime/formats/onnxWriter';
import { quantizeRows, dequantizeRows, type QuantBits } from '../../src/engines/onnxruntime/precision/quantize';
import { quantizedExperts, quantizedLinear } from '../../src/engines/onnxruntime/precision/graphHooks';
import type { ExpertKernel } from '../../src/engines/onnxruntime/precision/prepareQuantized';
import { tempDir } from '../support/models';

const E = 8;
const H = 64;
const I = 32;
const K = 2;
const T = 6;
const BLOCK = 32;

function random(n: number, seed: number, scale = 0.2): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return ((s >>> 8) / 16777216 - 0.5) * scale;
  });
}

class Blob {
  private parts: Uint8Array[] = [];
  private offset = 0;
  add(bytes: Uint8Array | Float32Array): ExternalRef {
    const b = bytes instanceof Float32Array ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes;
    const ref = { location: 'w.bin', offset: this.offset, length: b.byteLength };
    this.parts.push(b);
    this.offset += b.byteLength;
    return ref;
  }
  write(dir: string): void {
    fs.writeFileSync(path.join(dir, 'w.bin'), Buffer.concat(this.parts));
  }
}

async function run(dir: string, name: string, g: OnnxGraphBuilder, blob: Blob, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  blob.write(dir);
  const file = path.join(dir, `${name}.onnx`);
  fs.writeFileSync(file, g.toBytes({ producer: 'test' }));
  const s = await ort.InferenceSession.create(file, { executionProviders: ['cpu'] });
  const out = await s.run(feeds);
  await s.release();
  return out.y.data as Float32Array;
}

function maxDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { diff, scale };
}

/** [E, 2I, H] with each expert's I gate rows then its I up rows, interleaved as the float operator's fused SwiGLU reads them (row 2r gate r, row 2r + 1 up r). */
function interleaveGateUp(gateUp: Float32Array, e: number, i: number, h: number): Float32Array {
  const out = new Float32Array(e * 2 * i * h);
  for (let x = 0; x < e; x++)
    for (let r = 0; r < i; r++) {
      const base = x * 2 * i * h;
      out.set(gateUp.subarray(base + r * h, base + (r + 1) * h), base + 2 * r * h);
      out.set(gateUp.subarray(base + (i + r) * h, base + (i + r + 1) * h), base + (2 * r + 1) * h);
    }
  return out;
}

/** The float MoE operator (the reference) on interleaved fc1 [E, 2I, H] and fc2 [E, H, I]. */
async function floatMoe(
  dir: string,
  feeds: Record<string, ort.Tensor>,
  w: { fc1: Float32Array; fc2: Float32Array; dims: [number, number, number, number]; normTopKProb: boolean },
): Promise<Float32Array> {
  const [e, h, i, k] = w.dims;
  const fb = new Blob();
  const gf = new OnnxGraphBuilder('f');
  gf.input('x', 'float32', ['t', h]);
  gf.input('r', 'float32', ['t', e]);
  gf.external('fc1', 'float32', [e, 2 * i, h], fb.add(w.fc1));
  gf.external('fc2', 'float32', [e, h, i], fb.add(w.fc2));
  const attrs = { k, normalize_routing_weights: w.normTopKProb ? 1 : 0, activation_type: 'swiglu', swiglu_fusion: 1 };
  gf.op('MoE', ['x', 'r', 'fc1', '', 'fc2'], attrs, { domain: 'com.microsoft', output: 'y' });
  gf.output('y', 'float32', ['t', h]);
  return run(dir, 'f', gf, fb, feeds);
}

/** Bound on |int8-compute - float32-compute| relative to the output scale: activations quantised per block to 8 bits. */
const INT8_COMPUTE_TOLERANCE = 2e-2;

/** The experts each token's top-k picks (softmax is monotone: top-k of the logits), lower index first on ties. */
function chosenExperts(logits: Float32Array, tokens: number): Set<number> {
  const used = new Set<number>();
  for (let t = 0; t < tokens; t++) {
    const row = Array.from(logits.subarray(t * E, (t + 1) * E));
    row
      .map((v, e) => [v, e])
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .slice(0, K)
      .forEach(([, e]) => used.add(e));
  }
  return used;
}

for (const kernel of ['matmulnbits', 'qmoe'] as ExpertKernel[]) {
  for (const bits of [8, 4] as QuantBits[]) {
    for (const normTopKProb of [true, false]) {
      for (const tokens of [T, 1]) {
        test(`experts int${bits} (${kernel}) equal the float MoE operator on the dequantised weights (normTopKProb ${normTopKProb}, ${tokens} tokens)`, async () => {
          const dir = tempDir(`qexperts-${bits}`);
          // fc1 per expert as prepareQuantized.ts lays it out: MatMulNBits its I gate rows, then its I up rows;
          // QMoE gate and up rows interleaved.
          const fc1 = random(E * 2 * I * H, 1);
          const fc2 = random(E * H * I, 2);
          const q1 = quantizeRows(fc1, E * 2 * I, H, bits, BLOCK);
          const q2 = quantizeRows(fc2, E * H, I, bits, BLOCK);
          const x = random(tokens * H, 3, 20);
          const logits = random(tokens * E, 4, 30);
          const used = chosenExperts(logits, tokens);
          assert.ok(used.size < E, 'some expert gets no token (the empty-group case is exercised)');
          const feeds = { x: new ort.Tensor('float32', x, [tokens, H]), r: new ort.Tensor('float32', logits, [tokens, E]) };

          const qb = new Blob();
          const refs = { kernel, fc1: qb.add(q1.packed), fc1Scales: qb.add(q1.scales), fc2: qb.add(q2.packed), fc2Scales: qb.add(q2.scales), block: BLOCK };
          const outputs: Record<number, Float32Array> = {};
          for (const accuracy of kernel === 'matmulnbits' ? ([0, 4] as const) : ([0] as const)) {
            const gq = new OnnxGraphBuilder('q');
            gq.input('x', 'float32', ['t', H]);
            gq.input('r', 'float32', ['t', E]);
            const weights = { bits, linear: () => undefined, quantizedExperts: () => refs };
            quantizedExperts(gq, {
              layer: 0,
              x: 'x',
              routerLogits: 'r',
              weights,
              numExperts: E,
              hiddenSize: H,
              intermediate: I,
              topK: K,
              normTopKProb,
              output: 'y',
              accuracy,
            });
            gq.output('y', 'float32', ['t', H]);
            outputs[accuracy] = await run(dir, `q${accuracy}`, gq, qb, feeds);
          }

          const deq1 = dequantizeRows(q1, E * 2 * I, H, bits, BLOCK);
          const yf = await floatMoe(dir, feeds, {
            fc1: kernel === 'qmoe' ? deq1 : interleaveGateUp(deq1, E, I, H),
            fc2: dequantizeRows(q2, E * H, I, bits, BLOCK),
            dims: [E, H, I, K],
            normTopKProb,
          });

          const exact = maxDiff(outputs[0], yf);
          const int8 = outputs[4] ? maxDiff(outputs[4], yf) : null;
          console.log(
            `experts int${bits} (${kernel}) vs MoE on dequantised weights (normTopKProb ${normTopKProb}, ${tokens} tokens, ${used.size}/${E} experts used): ` +
              `float32 compute ${exact.diff.toExponential(2)}${int8 ? `, int8 compute ${int8.diff.toExponential(2)}` : ''} (outputs up to ${exact.scale.toFixed(3)})`,
          );
          assert.ok(exact.scale > 1e-3, 'the outputs are not trivially zero');
          assert.ok(exact.diff <= 1e-5 * Math.max(1, exact.scale), `float32 compute: max difference ${exact.diff}`);
          if (int8) assert.ok(int8.diff <= INT8_COMPUTE_TOLERANCE * exact.scale, `int8 compute: max difference ${int8.diff}`);
        });
      }
    }
  }
}

test('experts int8 (matmulnbits) on 300 tokens: every call gives the same output, equal to the float MoE operator on the dequantised weights (no lost updates when several tokens add into one row)', async () => {
  const [e, h, i, k, t] = [16, 256, 128, 4, 300];
  const dir = tempDir('qexperts-large');
  const q1 = quantizeRows(random(e * 2 * i * h, 21), e * 2 * i, h, 8, BLOCK);
  const q2 = quantizeRows(random(e * h * i, 22), e * h, i, 8, BLOCK);
  const feeds = { x: new ort.Tensor('float32', random(t * h, 23, 20), [t, h]), r: new ort.Tensor('float32', random(t * e, 24, 30), [t, e]) };
  const qb = new Blob();
  const refs = {
    kernel: 'matmulnbits' as const,
    fc1: qb.add(q1.packed),
    fc1Scales: qb.add(q1.scales),
    fc2: qb.add(q2.packed),
    fc2Scales: qb.add(q2.scales),
    block: BLOCK,
  };
  const gq = new OnnxGraphBuilder('q');
  gq.input('x', 'float32', ['t', h]);
  gq.input('r', 'float32', ['t', e]);
  const weights = { bits: 8 as const, linear: () => undefined, quantizedExperts: () => refs };
  quantizedExperts(gq, {
    layer: 0,
    x: 'x',
    routerLogits: 'r',
    weights,
    numExperts: e,
    hiddenSize: h,
    intermediate: i,
    topK: k,
    normTopKProb: false,
    output: 'y',
    accuracy: 0,
  });
  gq.output('y', 'float32', ['t', h]);
  qb.write(dir);
  fs.writeFileSync(path.join(dir, 'q.onnx'), gq.toBytes({ producer: 'test' }));
  const session = await ort.InferenceSession.create(path.join(dir, 'q.onnx'), { executionProviders: ['cpu'] });
  const runs: Float32Array[] = [];
  for (let n = 0; n < 5; n++) runs.push((await session.run(feeds)).y.data as Float32Array);
  await session.release();

  const yf = await floatMoe(dir, feeds, {
    fc1: interleaveGateUp(dequantizeRows(q1, e * 2 * i, h, 8, BLOCK), e, i, h),
    fc2: dequantizeRows(q2, e * h, i, 8, BLOCK),
    dims: [e, h, i, k],
    normTopKProb: false,
  });
  for (const [n, y] of runs.entries()) {
    assert.ok(Buffer.from(y.buffer).equals(Buffer.from(runs[0].buffer)), `call ${n} differs from call 0`);
    const { diff, scale } = maxDiff(y, yf);
    assert.ok(diff <= 1e-5 * Math.max(1, scale), `call ${n}: max difference ${diff} (outputs up to ${scale})`);
  }
});

test('kernel fact: QMoE renormalises the top-k weights even when told not to (hence graphHooks multiplies by the top-k mass)', async () => {
  const dir = tempDir('qmoe-renorm');
  const bits = 8;
  const q1 = quantizeRows(random(E * 2 * I * H, 5), E * 2 * I, H, bits, BLOCK);
  const q2 = quantizeRows(random(E * H * I, 6), E * H, I, bits, BLOCK);
  const feeds = { x: new ort.Tensor('float32', random(T * H, 7, 20), [T, H]), r: new ort.Tensor('float32', random(T * E, 8, 30), [T, E]) };
  const outputs: Float32Array[] = [];
  for (const norm of [0, 1]) {
    const b = new Blob();
    const g = new OnnxGraphBuilder('raw');
    g.input('x', 'float32', ['t', H]);
    g.input('r', 'float32', ['t', E]);
    g.external('fc1', 'uint8', [E, 2 * I, H], b.add(q1.packed));
    g.external('s1', 'float32', [E, 2 * I, H / BLOCK], b.add(q1.scales));
    g.external('fc2', 'uint8', [E, H, I], b.add(q2.packed));
    g.external('s2', 'float32', [E, H, I / BLOCK], b.add(q2.scales));
    const attrs = { k: K, normalize_routing_weights: norm, activation_type: 'swiglu', swiglu_fusion: 1, expert_weight_bits: bits, block_size: BLOCK };
    g.op('QMoE', ['x', 'r', 'fc1', 's1', '', 'fc2', 's2'], attrs, { domain: 'com.microsoft', output: 'y' });
    g.output('y', 'float32', ['t', H]);
    outputs.push(await run(dir, `raw${norm}`, g, b, feeds));
  }
  // If a later ONNX Runtime honours normalize_routing_weights=0, this fails: then graphHooks' correction must go.
  assert.ok(maxDiff(outputs[0], outputs[1]).diff <= 1e-6, 'normalize_routing_weights=0 and =1 give the same output');
});

for (const bits of [8, 4] as QuantBits[]) {
  test(`MatMulNBits int${bits} equals Gemm on the dequantised matrix (float32 compute exactly, int8 compute within bounds)`, async () => {
    const dir = tempDir(`mnb-${bits}`);
    const N = 48;
    const Kin = 128;
    const w = random(N * Kin, 9);
    const q = quantizeRows(w, N, Kin, bits, BLOCK);
    const a = random(5 * Kin, 10, 4);
    const feeds = { a: new ort.Tensor('float32', a, [5, Kin]) };
    const qb = new Blob();
    const ref = { packed: qb.add(q.packed), scales: qb.add(q.scales), N, K: Kin, block: BLOCK, bits };
    const outputs: Record<number, Float32Array> = {};
    for (const accuracy of [0, 4] as const) {
      const gq = new OnnxGraphBuilder('q');
      gq.input('a', 'float32', ['m', Kin]);
      gq.op('Identity', [quantizedLinear(gq, 'a', 'w', ref, undefined, accuracy)], {}, { output: 'y' });
      gq.output('y', 'float32', ['m', N]);
      outputs[accuracy] = await run(dir, `q${accuracy}`, gq, qb, feeds);
    }
    const fb = new Blob();
    const gf = new OnnxGraphBuilder('f');
    gf.input('a', 'float32', ['m', Kin]);
    gf.external('w', 'float32', [N, Kin], fb.add(dequantizeRows(q, N, Kin, bits, BLOCK)));
    gf.op('Gemm', ['a', 'w'], { transB: 1 }, { output: 'y' });
    gf.output('y', 'float32', ['m', N]);
    const yf = await run(dir, 'f', gf, fb, feeds);
    const exact = maxDiff(outputs[0], yf);
    const int8 = maxDiff(outputs[4], yf);
    console.log(
      `MatMulNBits int${bits}: float32 compute ${exact.diff.toExponential(2)}, int8 compute ${int8.diff.toExponential(2)} (outputs up to ${exact.scale.toFixed(3)})`,
    );
    assert.ok(exact.scale > 1e-3);
    assert.ok(exact.diff <= 1e-5 * Math.max(1, exact.scale), `float32 compute: max difference ${exact.diff}`);
    assert.ok(int8.diff <= INT8_COMPUTE_TOLERANCE * exact.scale, `int8 compute: max difference ${int8.diff}`);
    assert.ok(int8.diff > 0, 'accuracy_level 4 computes in int8 (a difference from float32 compute is expected; none means the level was not applied)');
  });
}
