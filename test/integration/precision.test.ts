/**
 * Weight precision in the ONNX Runtime CPU engine, on the OLMoE demo model (16 layers x 64 experts,
 * top-8, random weights): int8 (MatMulNBits experts and projections) and int4 (QMoE experts, MatMulNBits
 * projections), both with an fp32 router, route like
 * fp32 within a loose bound, and the numbers are printed; the graph cache is keyed by precision and a
 * quantised cache that is damaged or was written for another precision is rebuilt; a precision the
 * provider cannot run, or one that does not fit the memory, is refused before loading, naming what can;
 * bf16 experts decoded on the quantisation workers give the bytes the float32 path gives.
 *
 * The bounds are loose on purpose: with random weights and tiny widths (hidden 64, so a dot product
 * averages few rounding errors), router logits are close together (many near-ties among 64 experts) and
 * a weight error of ~0.4% (int8) or ~7% (int4 experts) per weight moves some tokens' k-th expert, more so in deep
 * layers, whose routers read the earlier layers' errors. They catch a broken layout or scale, which gives
 * chance agreement (expert overlap about k/E = 12.5%, identical sets near 0). The exactness of the
 * kernels themselves is checked in precision-kernels.test.ts.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { EngineFailure, type TraceResult, type WeightPrecision } from '../../src/shared/protocol';
import { compareRouting } from '../../src/analysis/precisionAgreement';
import { makeModel, tempDir, SAMPLE_QUESTION } from '../support/models';
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import { prepareQuantizedWeights } from '../../src/engines/onnxruntime/precision/prepareQuantized';

let model = '';
let cacheDir = '';
const traces = new Map<WeightPrecision, TraceResult>();

async function traceAt(precision: WeightPrecision, logs: string[] = []): Promise<{ r: TraceResult; engine: Engine }> {
  const engine = new Engine((level, message) => logs.push(message));
  const info = await engine.load(model, { executionProvider: 'cpu', cacheDir, precision });
  assert.equal(info.precision, precision);
  assert.equal(info.precisionWhy, 'requested');
  const r = await engine.trace({ text: SAMPLE_QUESTION }, { includeProbs: true, includeLastLogits: true });
  return { r, engine };
}

before(async () => {
  model = makeModel({ family: 'olmoe' });
  cacheDir = tempDir('precision-cache');
  for (const p of ['fp32', 'int8', 'int4'] as const) {
    const { r, engine } = await traceAt(p);
    traces.set(p, r);
    await engine.dispose();
  }
});

// Measured on this model: int8 93.8% identical sets, 99.2% overlap, 2.9e-2; int4 (8-bit projections)
// 70.0%, 96.0%, 1.3e-1 (int4 agreement falls with depth: each layer's error feeds the next layer's router).
for (const [precision, minSetAgreement, minOverlap, maxProbDiff] of [
  ['int8', 0.85, 0.97, 0.06],
  ['int4', 0.5, 0.92, 0.3],
] as const) {
  test(`${precision}: routing agrees with fp32 on the demo model (bound ${minSetAgreement} of top-k sets)`, () => {
    const a = compareRouting(traces.get('fp32')!.routing, traces.get(precision)!.routing);
    console.log(
      `${precision} vs fp32, demo OLMoE, ${traces.get('fp32')!.routing.numTokens} tokens: top-k sets identical ${(a.setAgreement * 100).toFixed(1)}%, ` +
        `expert overlap ${(a.expertOverlap * 100).toFixed(1)}%, max router-probability difference ${a.maxProbDiff.toExponential(2)}, per layer ${a.perLayer.map((x) => x.toFixed(2)).join(' ')}`,
    );
    assert.ok(a.setAgreement >= minSetAgreement, `top-k set agreement ${a.setAgreement}`);
    assert.ok(a.expertOverlap >= minOverlap, `expert overlap ${a.expertOverlap}`);
    assert.ok(a.maxProbDiff <= maxProbDiff, `max router probability difference ${a.maxProbDiff}`);
    // Not identical either: a quantised graph that silently ran fp32 would pass the bounds.
    assert.ok(a.maxProbDiff > 1e-6, 'the quantised trace differs from fp32 at all');
  });
}

test('int8 and int4 agree better at 8 bits than at 4', () => {
  const a8 = compareRouting(traces.get('fp32')!.routing, traces.get('int8')!.routing);
  const a4 = compareRouting(traces.get('fp32')!.routing, traces.get('int4')!.routing);
  assert.ok(a8.maxProbDiff < a4.maxProbDiff, `${a8.maxProbDiff} < ${a4.maxProbDiff}`);
});

test('the graph cache is keyed by precision; a second load reuses it', async () => {
  const dirs = fs.readdirSync(cacheDir).filter((d) => !d.startsWith('weight-analysis'));
  assert.equal(dirs.length, 3, `one cache folder per precision: ${dirs.join(', ')}`);
  const precisions = dirs.map((d) => JSON.parse(fs.readFileSync(path.join(cacheDir, d, 'integrity.json'), 'utf8')).precision).sort();
  assert.deepEqual(precisions, ['fp32', 'int4', 'int8']);
  const logs: string[] = [];
  const { r, engine } = await traceAt('int8', logs);
  assert.ok(!logs.some((m) => /built int8 graph/.test(m)), 'reused, not rebuilt');
  assert.deepEqual(Array.from(r.routing.topExperts), Array.from(traces.get('int8')!.routing.topExperts));
  await engine.dispose();
});

test('a damaged quantised cache, or one written for another precision, is rebuilt, not used', async () => {
  const dir = fs.readdirSync(cacheDir).find((d) => fs.existsSync(path.join(cacheDir, d, 'q4-experts-fc1.bin')))!;
  const bin = path.join(cacheDir, dir, 'q4-experts-fc1.bin');
  fs.truncateSync(bin, fs.statSync(bin).size - 1);
  let logs: string[] = [];
  const first = await traceAt('int4', logs);
  const { r } = first;
  let engine = first.engine;
  assert.ok(
    logs.some((m) => /not usable \(q4-experts-fc1.bin is \d+ bytes/.test(m)),
    logs.join('\n'),
  );
  assert.ok(logs.some((m) => /built int4 graph/.test(m)));
  assert.deepEqual(Array.from(r.routing.topExperts), Array.from(traces.get('int4')!.routing.topExperts));
  await engine.dispose();
  // A folder whose record says int8 (e.g. copied over) is not taken for int4.
  const integrity = path.join(cacheDir, dir, 'integrity.json');
  fs.writeFileSync(integrity, fs.readFileSync(integrity, 'utf8').replace('"int4"', '"int8"'));
  logs = [];
  ({ engine } = await traceAt('int4', logs));
  assert.ok(
    logs.some((m) => /built for precision int8, not int4/.test(m)),
    logs.join('\n'),
  );
  await engine.dispose();
});

test('a precision the provider cannot run is refused naming what can', async () => {
  const engine = new Engine(() => {});
  for (const p of ['bf16', 'fp16'] as const) {
    await assert.rejects(
      engine.load(model, { executionProvider: 'cpu', cacheDir, precision: p }),
      (e: Error) => e instanceof EngineFailure && e.code === 'bad-input' && /runs fp32, int8, int4/.test(e.message) && e.message.includes(p),
    );
  }
  await engine.dispose();
});

test('int8 asked of WebGPU is refused naming its precisions; with provider auto the CPU runs it, and the decisions say why', async () => {
  const engine = new Engine(() => {});
  await assert.rejects(
    engine.load(model, { executionProvider: 'webgpu', cacheDir, precision: 'int8' }),
    (e: Error) => e instanceof EngineFailure && /WEBGPU provider, which runs fp32, fp16; int8 runs on the ONNX Runtime CPU provider/.test(e.message),
  );
  const info = await engine.load(model, { executionProvider: 'auto', cacheDir, precision: 'int8' });
  assert.equal(info.executionProvider, 'cpu');
  assert.equal(info.precision, 'int8');
  const webgpu = info.providerDecisions!.find((d) => d.provider === 'webgpu')!;
  assert.match(webgpu.why, /cannot run precision int8 \(it runs fp32, fp16\)/);
  await engine.dispose();
});

test('not enough memory: said before loading, with the precision that would fit; auto picks it', async () => {
  const engine = new Engine(() => {});
  const saved = process.env.MOE_SCOPE_AVAILABLE_MEMORY;
  try {
    // Between the int8 and fp32 needs of the demo model (fp32 ~ 9 MB of weights, plus overheads).
    const fp32Dir = fs.readdirSync(cacheDir).length;
    process.env.MOE_SCOPE_AVAILABLE_MEMORY = String(await needBetween());
    await assert.rejects(
      engine.load(model, { executionProvider: 'cpu', cacheDir, precision: 'fp32' }),
      (e: Error) => e instanceof EngineFailure && /at fp32 the model needs about .* int8 would fit .*--precision int8/.test(e.message),
    );
    assert.equal(fs.readdirSync(cacheDir).length, fp32Dir, 'refused before building anything');
    const info = await engine.load(model, { executionProvider: 'cpu', cacheDir, precision: 'auto' });
    assert.equal(info.precision, 'int8');
    assert.match(info.precisionWhy!, /^auto: fp32 needs about .*; int8 fits/);
  } finally {
    if (saved === undefined) delete process.env.MOE_SCOPE_AVAILABLE_MEMORY;
    else process.env.MOE_SCOPE_AVAILABLE_MEMORY = saved;
    await engine.dispose();
  }
});

test('the all-experts analysis is refused at int8, naming fp32', async () => {
  const { engine } = await traceAt('int8');
  await assert.rejects(
    engine.trace({ text: 'Hello' }, { includeProbs: false, includeLastLogits: false, allExperts: true }),
    (e: Error) => e instanceof EngineFailure && /load it with precision fp32/.test(e.message),
  );
  await engine.dispose();
});

async function needBetween(): Promise<number> {
  const { Checkpoint } = await import('../../src/engines/onnxruntime/checkpoint');
  const { weightBytesAt, runtimeOverheadBytes } = await import('../../src/engines/onnxruntime/precision/choose');
  const ck = Checkpoint.open(model);
  const over = runtimeOverheadBytes(ck);
  return Math.round((weightBytesAt(ck, 'fp32') + weightBytesAt(ck, 'int8')) / 2 + over);
}

for (const bits of [8, 4] as const) {
  test(`int${bits}: a bf16 checkpoint's experts, decoded on the quantisation workers, give the bytes of its float32 decode on the calling thread`, async () => {
    const bf16 = makeModel({ family: 'olmoe', dtype: 'BF16', overrides: { layers: 2 } });
    const files: Record<string, Buffer>[] = [];
    for (const path_ of ['workers', 'float32'] as const) {
      const ckpt = Checkpoint.open(bf16);
      if (path_ === 'float32') ckpt.readExpertBf16 = () => null;
      else assert.ok(ckpt.readExpertBf16(0, 0), 'the bf16 path is taken for this checkpoint');
      const dir = tempDir(`bf16-${bits}-${path_}`);
      await prepareQuantizedWeights(ckpt, dir, bits, () => {}, 2);
      files.push(
        Object.fromEntries(
          fs
            .readdirSync(dir)
            .filter((f) => f.startsWith(`q${bits}-experts`))
            .map((f) => [f, fs.readFileSync(path.join(dir, f))]),
        ),
      );
    }
    assert.equal(Object.keys(files[0]).length, 4);
    for (const [name, bytes] of Object.entries(files[0])) assert.ok(bytes.equals(files[1][name]), `${name} differs`);
  });
}
