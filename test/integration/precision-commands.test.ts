/**
 * `moe-scope doctor --precision` (issue 23): the report names the precision the graph was built at and
 * which op types run it (int8: MatMulNBits for every quantised matrix, experts included; int4: QMoE for
 * the experts, MatMulNBits for the projections; fp32: the float MoE operator and no MatMulNBits); a precision
 * the chosen engine cannot run is refused naming what it can.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inferenceEnvironment, describeEnvironment } from '../../src/engines/onnxruntime/doctor';
import { EngineFailure } from '../../src/shared/protocol';
import { makeModel, tempDir } from '../support/models';
import { testPython } from '../support/python';

const model = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
const cacheDir = tempDir('precision-commands-cache');

test('doctor --precision: int8 runs its experts and projections as MatMulNBits, int4 its experts as QMoE, fp32 the MoE operator', async () => {
  const { num_experts: experts } = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')) as { num_experts: number };
  const int8 = await inferenceEnvironment(model, { provider: 'cpu', precision: 'int8', cacheDir });
  assert.equal(int8.precision, 'int8');
  assert.equal(int8.precisionWhy, 'requested');
  // Two per expert and layer (fc1, fc2), plus the attention projections and lm_head.
  assert.ok((int8.cpuOpTypes.MatMulNBits ?? 0) > 2 * 2 * experts, `MatMulNBits per expert: ${JSON.stringify(int8.cpuOpTypes)}`);
  assert.equal(int8.cpuOpTypes.MoE, undefined, 'no float expert operator at int8');
  assert.equal(int8.cpuOpTypes.QMoE, undefined);
  assert.match(describeEnvironment(int8), /precision int8 \(requested\)/);
  const int4 = await inferenceEnvironment(model, { provider: 'cpu', precision: 'int4', cacheDir });
  assert.equal(int4.cpuOpTypes.QMoE, 2, `int4: one QMoE per layer: ${JSON.stringify(int4.cpuOpTypes)}`);
  assert.ok((int4.cpuOpTypes.MatMulNBits ?? 0) > 0 && (int4.cpuOpTypes.MatMulNBits ?? 0) < 2 * experts, 'int4: MatMulNBits for the projections only');
  const fp32 = await inferenceEnvironment(model, { provider: 'cpu', precision: 'fp32', cacheDir });
  assert.equal(fp32.precision, 'fp32');
  assert.equal(fp32.cpuOpTypes.MoE, 2, 'one MoE operator per layer at fp32');
  assert.equal(fp32.cpuOpTypes.MatMulNBits, undefined);
});

test('doctor: a precision the engine cannot run is refused naming what it runs (ONNX Runtime CPU: bf16; PyTorch: int4)', async () => {
  await assert.rejects(
    inferenceEnvironment(model, { provider: 'cpu', precision: 'bf16', cacheDir }),
    (e: Error) =>
      e instanceof EngineFailure && e.code === 'bad-input' && /CPU provider, which runs fp32, int8, int4; bf16 runs on the PyTorch engine/.test(e.message),
  );
  await assert.rejects(
    inferenceEnvironment(model, { provider: 'cpu', engine: 'pytorch', python: testPython(), precision: 'int4', cacheDir }),
    (e: Error) =>
      e instanceof EngineFailure && e.code === 'bad-input' && /precision int4 cannot run in the PyTorch engine, which runs fp32, bf16/.test(e.message),
  );
});
