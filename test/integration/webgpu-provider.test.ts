/**
 * The WebGPU provider's plumbing: the placement-log parser, the status bar label, the CLI's --provider
 * option, the memory check (a clear 'provider-unavailable' error naming what the graph needs), and
 * `moe-scope doctor --json` on a generated checkpoint (CI: lavapipe).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePlacementLog, estimateWebGpuMemory, resetWebGpuProbe } from '../../src/engines/onnxruntime/webgpu';
import { providerLabel } from '../../src/host/providerLabel';
// Not src/cli/main: it runs the CLI when it is the bundle's main module.
import { runCommand } from '../../src/cli/commands';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { EngineFailure, type InferenceEnvironmentReport } from '../../src/shared/protocol';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeModel, tempDir, REPO_ROOT } from '../support/models';
import { testPython } from '../support/python';
import { requireWebGpu } from '../support/webgpu';

test('parsePlacementLog counts nodes per provider and CPU op types', () => {
  const ts = '2026-11-30 01:20:45.303825980 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]';
  const log = [
    `${ts} Node placements`,
    `${ts}  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 3`,
    `${ts}   MatMul (n_MatMul_1)`,
    `${ts}   Softmax (n_Softmax_2)`,
    `${ts}   Gemm (n_Gemm_3)`,
    `${ts}  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3`,
    `${ts}   Shape (n_Shape_1)`,
    `${ts}   MoE (n_MoE_150)`,
    `${ts}   MoE (n_MoE_281)`,
    '2026-11-30 01:20:45.4 [I:onnxruntime:, inference_session.cc:3094 Initialize] Session successfully initialized.',
  ].join('\n');
  const p = parsePlacementLog(log);
  assert.deepEqual(p.nodesByProvider, { WebGpuExecutionProvider: 3, CPUExecutionProvider: 3 });
  assert.deepEqual(p.cpuOpTypes, { Shape: 1, MoE: 2 });
  const all = parsePlacementLog(`${ts}  All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 5`);
  assert.deepEqual(all, { nodesByProvider: { WebGpuExecutionProvider: 5 }, cpuOpTypes: {} });
});

test('the status bar names the provider, its dtype and the adapter', () => {
  assert.equal(providerLabel({ executionProvider: 'cpu', dtype: 'float32' }), 'CPU');
  assert.equal(providerLabel({ executionProvider: 'cuda', dtype: 'float16' }), 'CUDA fp16');
  assert.equal(providerLabel({ executionProvider: 'mps', dtype: 'bfloat16' }), 'MPS bf16');
  assert.equal(providerLabel({ executionProvider: 'webgpu', dtype: 'float16', adapterName: 'NVIDIA H200 (NVIDIA Vulkan)' }), 'WebGPU fp16 · NVIDIA H200');
  assert.equal(providerLabel({ executionProvider: 'webgpu', dtype: 'float32' }), 'WebGPU fp32');
});

test('doctor --provider names the accepted providers when given another', async () => {
  const err: string[] = [];
  const code = await runCommand('doctor', ['--model', '/nonexistent', '--provider', 'vulkan'], { out: () => {}, err: (s) => err.push(s) });
  assert.equal(code, 2);
  assert.match(err.join('\n'), /--provider must be auto, cuda, webgpu or cpu, not "vulkan"/);
});

test('the memory estimate grows with the token count and includes every weight', () => {
  const shape = { numLayers: 16, hiddenSize: 2048, numExperts: 64, expertIntermediate: 1024, numHeads: 16, numKvHeads: 16, headDim: 128, vocabSize: 50304 };
  const a = estimateWebGpuMemory(shape, 1e9, 2, 128, 128);
  const b = estimateWebGpuMemory(shape, 1e9, 2, 2048, 2048);
  assert.equal(a.weightBytes, 1e9);
  assert.equal(a.totalBytes, a.weightBytes + a.activationBytes);
  assert.ok(b.activationBytes > 10 * a.activationBytes);
  // The dense experts' gate/up/activation buffers alone: 3 x tokens x E x I values.
  assert.ok(b.activationBytes >= 3 * 2048 * 64 * 1024 * 2);
});

test('WebGPU asked for by name on a GPU too small for the model: a clear provider-unavailable error', async () => {
  await requireWebGpu();
  const dir = makeModel({ family: 'mixtral' });
  process.env.MOE_SCOPE_GPU_MEMORY_BYTES = String(1024 * 1024);
  resetWebGpuProbe();
  const engine = new Engine();
  try {
    await assert.rejects(
      engine.load(dir, { executionProvider: 'webgpu', cacheDir: tempDir('cache') }),
      (e: Error) =>
        e instanceof EngineFailure && e.code === 'provider-unavailable' && /needs about .* and .* has 1 MiB/.test(e.message) && /"cpu"/.test(e.message),
    );
  } finally {
    delete process.env.MOE_SCOPE_GPU_MEMORY_BYTES;
    resetWebGpuProbe();
    await engine.dispose();
  }
});

test('moe-scope doctor --json: provider, adapter, dtype and cpuOpTypes', async () => {
  const adapter = await requireWebGpu();
  const dir = makeModel({ family: 'olmoe' });
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommand('doctor', ['--model', dir, '--provider', 'webgpu', '--cache', tempDir('cache'), '--json'], {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
  });
  assert.equal(code, 0, err.join('\n'));
  const r = JSON.parse(out.join('\n')) as InferenceEnvironmentReport;
  assert.equal(r.engine, 'onnxruntime');
  assert.equal(r.provider, 'webgpu');
  assert.equal(r.adapter?.name, adapter.name);
  assert.equal(r.dtype, adapter.shaderF16 ? 'float16' : 'float32');
  assert.equal(r.expertFormulation, 'dense-gated');
  assert.deepEqual(
    r.decisions.map((d) => [d.provider, d.used]),
    [['webgpu', true]],
  );
  assert.ok((r.nodesByProvider.WebGpuExecutionProvider ?? 0) > 100);
  for (const op of ['MoE', 'MatMul', 'Gemm', 'Softmax', 'TopK']) assert.equal(r.cpuOpTypes[op], undefined, `${op} on the CPU`);

  const cpuOut: string[] = [];
  assert.equal(
    await runCommand('doctor', ['--model', dir, '--provider', 'cpu', '--cache', tempDir('cache'), '--json'], { out: (s) => cpuOut.push(s), err: () => {} }),
    0,
  );
  const c = JSON.parse(cpuOut.join('\n')) as InferenceEnvironmentReport;
  assert.equal(c.provider, 'cpu');
  assert.equal(c.expertFormulation, 'moe-op');
  assert.equal(c.cpuOpTypes.MoE, 16, 'every layer has one MoE node on the CPU');
});

test('moe-scope doctor --engine auto: the engine choice and its reason (PyTorch without a GPU: ONNX Runtime)', async () => {
  const python = testPython();
  process.env.MOE_SCOPE_WORKER_DIR ??= path.join(REPO_ROOT, 'python');
  const dir = makeModel({ family: 'mixtral' });
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommand(
    'doctor',
    ['--model', dir, '--engine', 'auto', '--python', python, '--provider', 'cpu', '--cache', tempDir('cache'), '--json'],
    { out: (s) => out.push(s), err: (s) => err.push(s) },
  );
  assert.equal(code, 0, err.join('\n'));
  const r = JSON.parse(out.join('\n')) as InferenceEnvironmentReport;
  assert.ok(r.python, 'the PyTorch check is in the report');
  if (r.python.gpu) {
    assert.equal(r.engine, 'pytorch');
  } else {
    assert.equal(r.engine, 'onnxruntime');
    assert.match(r.engineWhy, /^auto: .*(no GPU|unavailable)/);
    assert.equal(r.provider, 'cpu');
    const layers = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).num_hidden_layers;
    assert.equal(r.cpuOpTypes.MoE, layers, 'one MoE node per layer, on the CPU');
  }
});
