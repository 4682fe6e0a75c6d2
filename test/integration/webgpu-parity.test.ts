/**
 * The WebGPU engine against the CPU engine on generated OLMoE, Mixtral and Qwen2-MoE checkpoints (CI:
 * lavapipe): router probabilities and last-position logits, top-k sets identical except near-ties,
 * which are counted and reported; and where ONNX Runtime places the WebGPU graph's nodes.
 *
 * float16 tolerance: float16 keeps 11 significant bits (unit roundoff u = 2^-11 = 4.9e-4). Weights,
 * activations and every product are rounded to it across 16 layers with residual additions; a router
 * logit of magnitude m then carries an error of order m * u * sqrt(accumulations), and a probability
 * moves by at most half the change of a logit difference. On these random checkpoints the largest
 * router-probability difference seen before any routing flip is 1.3e-2 (measured with this test,
 * printed as a diagnostic); the tolerance is 3e-2 absolute (uniform is 1/64 to 1/8, so a probability
 * that moved by more is a real error), and logits 5e-2 + 2e-2 x |logit|. A top-k difference is a
 * near-tie when the CPU's k-th and (k+1)-th probabilities differ by less than the probability
 * tolerance: float16 may order them either way; near-ties are counted and reported. After a flip the
 * two engines compute different (equally valid) functions, so the cells a flip can reach are not held
 * to the tolerance, and the float16 logits are compared on a window of the text without any flip.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { placementOf } from '../../src/engines/onnxruntime/webgpu';
import type { ComputeDType, ExpertFormulation, TraceResult } from '../../src/shared/protocol';
import { WEBGPU_DEFAULT_EXPERTS } from '../../src/engines/onnxruntime/runtime';
import type { DemoFamily } from '../../src/engines/onnxruntime/demo/makeDemoModel';
import { makeModel, tempDir, SAMPLE_QUESTION } from '../support/models';
import { requireWebGpu } from '../support/webgpu';

const TOL: Record<ComputeDType, { prob: number; logitAbs: number; logitRel: number }> = {
  float32: { prob: 1e-4, logitAbs: 1e-4, logitRel: 0 },
  float16: { prob: 3e-2, logitAbs: 5e-2, logitRel: 2e-2 },
};
// Fewer tokens than the CPU parity test: lavapipe runs the dense experts on 2 CPU cores.
const TEXT = SAMPLE_QUESTION.slice(0, 160);

async function trace(
  dir: string,
  executionProvider: 'cpu' | 'webgpu',
  dtype?: ComputeDType,
  experts?: ExpertFormulation,
  ids?: number[],
): Promise<TraceResult> {
  const engine = new Engine();
  try {
    const info = await engine.load(dir, { executionProvider, cacheDir: tempDir('cache'), webgpuDType: dtype, webgpuExperts: experts });
    assert.equal(info.executionProvider, executionProvider, `the engine fell back: ${info.providerNote ?? JSON.stringify(info.providerDecisions)}`);
    if (dtype) assert.equal(info.dtype, dtype);
    if (experts) assert.equal(info.expertFormulation, experts);
    return await engine.trace(ids ? { ids } : { text: TEXT }, { includeProbs: true, includeLastLogits: true });
  } finally {
    await engine.dispose();
  }
}

/**
 * Compares routing layer by layer. A top-k difference at a near-tie is a legitimate discrete flip, after
 * which the two engines compute different (equally valid) functions: every (layer, token) cell that a
 * flip can reach — later layers, same or later tokens (causal attention) — is counted as downstream and
 * not held to the tolerance, and the logits only when no flip happened. float32 must have no flip at all.
 */
function compare(cpu: TraceResult, gpu: TraceResult, tol: (typeof TOL)['float32']) {
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = cpu.routing;
  assert.equal(gpu.routing.numTokens, T);
  let maxProb = 0;
  let nearTies = 0;
  let topkDiffs = 0;
  let downstream = 0;
  // Cells at this layer reachable from a flip in an earlier layer: tokens >= reachFrom.
  let reachFrom = Infinity;
  let flips = 0;
  for (let l = 0; l < L; l++) {
    let flipHere = Infinity;
    for (let t = 0; t < T; t++) {
      const row = (l * T + t) * E;
      for (let e = 0; e < E; e++) assert.ok(Number.isFinite(gpu.routing.probs![row + e]), `WebGPU router probability is ${gpu.routing.probs![row + e]}`);
      if (t >= reachFrom) {
        downstream++;
        continue;
      }
      for (let e = 0; e < E; e++) maxProb = Math.max(maxProb, Math.abs(cpu.routing.probs![row + e] - gpu.routing.probs![row + e]));
      const sel = (r: TraceResult) => [...r.routing.topExperts.subarray((l * T + t) * K, (l * T + t + 1) * K)].sort((a, b) => a - b).join();
      if (sel(cpu) !== sel(gpu)) {
        const sorted = [...cpu.routing.probs!.subarray(row, row + E)].sort((a, b) => b - a);
        if (sorted[K - 1] - sorted[K] < tol.prob) {
          nearTies++;
          flips++;
          flipHere = Math.min(flipHere, t);
        } else topkDiffs++;
      }
    }
    reachFrom = Math.min(reachFrom, flipHere);
  }
  let maxLogit = 0;
  let worstLogitExcess = -Infinity;
  for (let v = 0; v < cpu.lastLogits!.length; v++) {
    const a = cpu.lastLogits![v];
    assert.ok(Number.isFinite(gpu.lastLogits![v]), `WebGPU logit ${v} is ${gpu.lastLogits![v]}`);
    const d = Math.abs(a - gpu.lastLogits![v]);
    maxLogit = Math.max(maxLogit, d);
    worstLogitExcess = Math.max(worstLogitExcess, d - (tol.logitAbs + tol.logitRel * Math.abs(a)));
  }
  return {
    maxProb,
    maxLogit,
    logitsCompared: flips === 0,
    worstLogitExcess: flips ? -1 : worstLogitExcess,
    nearTies,
    topkDiffs,
    downstream,
    decisions: L * T,
    firstFlipToken: reachFrom,
  };
}

const families: { family: DemoFamily; name: string }[] = [
  { family: 'olmoe', name: 'OLMoE (64 experts, top-8, no renormalisation)' },
  { family: 'mixtral', name: 'Mixtral (top-2, renormalised, GQA)' },
  { family: 'qwen2_moe', name: 'Qwen2-MoE (shared expert)' },
  { family: 'qwen3_moe', name: 'Qwen3-MoE (per-head q/k norm)' },
];

for (const { family, name } of families) {
  test(`WebGPU matches the CPU engine: ${name}`, async (t) => {
    const adapter = await requireWebGpu();
    const dir = makeModel({ family });
    const cpu = await trace(dir, 'cpu');
    // Both expert formulations in float32; float16 for the default one (what users get).
    const runs: [ComputeDType, ExpertFormulation][] = [
      ['float32', 'dense-gated'],
      ['float32', 'grouped'],
    ];
    if (adapter.shaderF16) runs.push(['float16', WEBGPU_DEFAULT_EXPERTS]);
    for (const [dtype, experts] of runs) {
      const gpu = await trace(dir, 'webgpu', dtype, experts);
      const tol = TOL[dtype];
      const d = compare(cpu, gpu, tol);
      t.diagnostic(
        `${family} ${dtype} ${experts} on ${adapter.name}: max |dp| ${d.maxProb.toExponential(2)}, max |dlogit| ${d.maxLogit.toExponential(2)}, near-ties ${d.nearTies} of ${d.decisions} top-k decisions, ${d.downstream} cells downstream of a near-tie flip not compared${d.logitsCompared ? '' : ' (logits not compared)'}, other top-k differences ${d.topkDiffs}`,
      );
      assert.ok(d.maxProb < tol.prob, `${dtype} ${experts}: router probabilities differ by ${d.maxProb} (tolerance ${tol.prob})`);
      assert.ok(
        d.worstLogitExcess <= 0,
        `${dtype} ${experts}: last-position logits differ by up to ${d.maxLogit} (tolerance ${tol.logitAbs} + ${tol.logitRel} x |logit|)`,
      );
      assert.equal(d.topkDiffs, 0, `${dtype} ${experts}: top-k expert sets differ beyond near-ties`);
      if (dtype === 'float32') assert.equal(d.nearTies, 0, `float32 ${experts}: top-k sets differ`);
      if (!d.logitsCompared) {
        // The logits after a flip are not comparable: compare them on a window of the text without one,
        // the prefix before the first flip first (shorter again, or starting later, if that run flips:
        // a different token count tiles the products differently).
        let checked = false;
        for (const start of [0, 8, 16, 24]) {
          let end = start === 0 ? d.firstFlipToken : start + 12;
          for (let attempt = 0; attempt < 3 && end > start && !checked; attempt++) {
            const ids = cpu.tokens.slice(start, end).map((tk) => tk.id);
            const p = compare(await trace(dir, 'cpu', undefined, undefined, ids), await trace(dir, 'webgpu', dtype, experts, ids), tol);
            if (!p.logitsCompared) {
              end = start + Math.min(end - start - 1, p.firstFlipToken);
              continue;
            }
            t.diagnostic(
              `${family} ${dtype} ${experts}: logits on tokens ${start}..${end - 1} (no flip): max |dlogit| ${p.maxLogit.toExponential(2)}, max |dp| ${p.maxProb.toExponential(2)}`,
            );
            assert.ok(p.worstLogitExcess <= 0, `${dtype} ${experts}: logits without a routing flip differ by up to ${p.maxLogit}`);
            checked = true;
          }
          if (checked) break;
        }
        assert.ok(checked, `${dtype} ${experts}: no window of the text without a routing flip to compare logits on`);
      }
    }
    if (!adapter.shaderF16) t.diagnostic(`${adapter.name} has no shader-f16: float16 not tested`);
  });
}

for (const experts of ['dense-gated', 'grouped'] as const) {
  test(`WebGPU placement (${experts}): no MoE, MatMul, Gemm, Softmax or TopK node on the CPU`, async (t) => {
    await requireWebGpu();
    const dir = makeModel({ family: 'qwen2_moe' }); // the family with the most kinds of nodes
    const cache = tempDir('cache');
    const engine = new Engine();
    let graph: string;
    try {
      const info = await engine.load(dir, { executionProvider: 'webgpu', cacheDir: cache, webgpuDType: 'float32', webgpuExperts: experts });
      assert.equal(info.executionProvider, 'webgpu');
      const sub = fs.readdirSync(cache).filter((d) => fs.existsSync(path.join(cache, d, 'complete')));
      assert.equal(sub.length, 1, 'one graph folder in the cache');
      graph = path.join(cache, sub[0], 'model.onnx');
    } finally {
      await engine.dispose();
    }
    const p = await placementOf(graph, ['webgpu', 'cpu']);
    assert.ok(p.sessionOk, `the placement session failed: ${p.error}`);
    const onGpu = p.nodesByProvider.WebGpuExecutionProvider ?? 0;
    t.diagnostic(`nodes: ${JSON.stringify(p.nodesByProvider)}; on the CPU: ${JSON.stringify(p.cpuOpTypes)}`);
    assert.ok(onGpu > 100, `only ${onGpu} nodes on WebGPU`);
    for (const op of ['MoE', 'MatMul', 'Gemm', 'Softmax', 'TopK']) assert.equal(p.cpuOpTypes[op] ?? 0, 0, `${op} placed on the CPU`);
    const cpuNodes = p.nodesByProvider.CPUExecutionProvider ?? 0;
    const counted = Object.values(p.cpuOpTypes).reduce((a, b) => a + b, 0);
    assert.equal(counted, cpuNodes, 'every CPU node has its op type in the log');
  });
}
