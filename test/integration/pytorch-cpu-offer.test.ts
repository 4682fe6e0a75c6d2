/**
 * The PyTorch engine, like ONNX Runtime, answers a model too large for the GPU with 'provider-unavailable',
 * so the host offers "Run on CPU"; and that offer's setting (executionProvider "cpu") then loads the model.
 * The worker is the real one (python -m moe_scope_worker), run by an interpreter wrapper that pretends the
 * machine has a CUDA GPU with 1 MB free: CI has no GPU, and the memory check runs before the GPU is touched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../../src/engines/client/engineClient';
import { pythonChannel } from '../../src/engines/client/pythonWorker';
import { EngineFailure, MODEL_INFO_FIELDS } from '../../src/shared/protocol';
import { offersRunOnCpu } from '../../src/host/cpuOffer';
import { REPO_ROOT, makeModel, tempDir } from '../support/models';
import { testPython } from '../support/python';

const PRETEND_GPU = `
import runpy, sys, torch
from moe_scope_worker import checkpoint, engine
real_memory = checkpoint.available_memory
checkpoint.available_memory = lambda d: (1_000_000, "free on the pretend GPU") if d.type == "cuda" else real_memory(d)
engine.pick_device = lambda setting: torch.device("cpu") if setting == "cpu" else torch.device("cuda", 0)
engine.describe_device = lambda d: "cuda:0 Pretend GPU" if d.type == "cuda" else d.type
sys.argv = ["moe_scope_worker"]
runpy.run_module("moe_scope_worker", run_name="__main__")
`;

function pretendGpuPython(): string {
  const dir = tempDir('pretend-gpu');
  fs.writeFileSync(path.join(dir, 'patch.py'), PRETEND_GPU);
  const wrapper = path.join(dir, 'python');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(testPython())} ${JSON.stringify(path.join(dir, 'patch.py'))}\n`, { mode: 0o755 });
  return wrapper;
}

test('PyTorch engine: too little GPU memory offers "Run on CPU", and the CPU then loads the model', async () => {
  process.env.MOE_SCOPE_WORKER_DIR ??= path.join(REPO_ROOT, 'python');
  const dir = makeModel({ family: 'olmoe' });
  const client = new EngineClient({ channel: pythonChannel(pretendGpuPython()) });
  try {
    const failure = await client.load(dir, { executionProvider: 'auto' }).then(
      () => assert.fail('the load on the pretend 1 MB GPU succeeded'),
      (e: unknown) => e,
    );
    assert.ok(failure instanceof EngineFailure, String(failure));
    assert.equal(failure.code, 'provider-unavailable', failure.message);
    assert.match(failure.message, /needs about .* on cuda:0 Pretend GPU .* only 0\.0 GiB is free on the pretend GPU/);
    assert.ok(offersRunOnCpu(failure), 'the host offers "Run on CPU" for it');

    const info = await client.load(dir, { executionProvider: 'cpu' });
    assert.equal(info.executionProvider, 'cpu');
    assert.equal(info.engine, 'pytorch');
    // The worker's ModelInfo has every required key of protocol.ts and no other.
    for (const [key, kind] of Object.entries(MODEL_INFO_FIELDS)) if (kind === 'required') assert.ok(key in info, `ModelInfo.${key} is missing`);
    for (const key of Object.keys(info)) assert.ok(key in MODEL_INFO_FIELDS, `the worker sent ModelInfo.${key}, which protocol.ts does not declare`);
  } finally {
    await client.dispose();
  }
});

test('the host offers "Run on CPU" for provider-unavailable only', () => {
  assert.ok(offersRunOnCpu(new EngineFailure('provider-unavailable', 'x')));
  for (const code of ['bad-model', 'non-finite', 'internal'] as const) assert.ok(!offersRunOnCpu(new EngineFailure(code, 'x')), code);
  assert.ok(!offersRunOnCpu(new Error('provider-unavailable')));
});
