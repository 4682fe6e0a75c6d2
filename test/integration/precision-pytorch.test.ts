/**
 * The PyTorch engine at bf16 on the CPU (transformers loads the weights with dtype=bfloat16): the model
 * info says so, and the routing is compared with the same engine at fp32 (agreement printed; loose bound,
 * see precision.test.ts for why random demo weights make near-ties common).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareRouting } from '../../src/analysis/precisionAgreement';
import { EngineFailure } from '../../src/shared/protocol';
import { engineClient } from '../support/engines';
import { makeModel, tempDir, SAMPLE_QUESTION } from '../support/models';

test('PyTorch engine: bf16 on the CPU, routing compared with fp32; int8 refused naming fp32 and bf16', async () => {
  const dir = makeModel({ family: 'olmoe' });
  const fp32 = engineClient('pytorch');
  const bf16 = engineClient('pytorch');
  try {
    const opts = { executionProvider: 'cpu' as const, cacheDir: tempDir('cache') };
    const [i32, i16] = await Promise.all([fp32.load(dir, { ...opts, precision: 'fp32' }), bf16.load(dir, { ...opts, precision: 'bf16' })]);
    assert.equal(i32.dtype, 'float32');
    assert.equal(i16.dtype, 'bfloat16');
    assert.equal(i16.precision, 'bf16');
    assert.equal(i16.precisionWhy, 'requested');
    const options = { includeProbs: true, includeLastLogits: false };
    const [a, b] = await Promise.all([
      fp32.call('trace', { input: { text: SAMPLE_QUESTION }, options }),
      bf16.call('trace', { input: { text: SAMPLE_QUESTION }, options }),
    ]);
    const agreement = compareRouting(a.routing, b.routing);
    console.log(
      `PyTorch bf16 vs fp32, demo OLMoE, ${a.routing.numTokens} tokens: top-k sets identical ${(agreement.setAgreement * 100).toFixed(1)}%, ` +
        `expert overlap ${(agreement.expertOverlap * 100).toFixed(1)}%, max router-probability difference ${agreement.maxProbDiff.toExponential(2)}`,
    );
    assert.ok(agreement.expertOverlap >= 0.9, `expert overlap ${agreement.expertOverlap}`);
    assert.ok(agreement.maxProbDiff > 0, 'bf16 actually changed something');
    await assert.rejects(
      bf16.load(dir, { ...opts, precision: 'int8' }),
      (e: Error) => (e instanceof EngineFailure || 'code' in e) && /runs fp32, bf16/.test(e.message),
    );
  } finally {
    await Promise.all([fp32.dispose(), bf16.dispose()]);
  }
});
