/** Engine choice and a broken Python: what 'auto' picks and why, and the messages a user sees. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkPython, chooseEngine } from '../../src/engines/client/pythonWorker';
import { providerLabel } from '../../src/host/providerLabel';
import type { PythonEnvironment } from '../../src/shared/protocol';
import { makeModel, tempDir, REPO_ROOT } from '../support/models';
import { testPython } from '../support/python';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
process.env.MOE_SCOPE_WORKER_DIR ??= path.join(REPO_ROOT, 'python');

const env = (over: Partial<PythonEnvironment>): PythonEnvironment => ({
  python: '3.11',
  executable: '/py',
  torch: '2.5',
  transformers: '5.0',
  problems: [],
  usable: true,
  gpu: false,
  devices: [],
  ...over,
});

test('auto: PyTorch only with torch, transformers and a GPU; otherwise ONNX Runtime, saying why', () => {
  const gpu = chooseEngine(env({ gpu: true, devices: [{ type: 'cuda', index: 0, name: 'NVIDIA H200' }] }));
  assert.equal(gpu.engine, 'pytorch');
  assert.match(gpu.why, /NVIDIA H200/);
  const cpu = chooseEngine(env({}));
  assert.equal(cpu.engine, 'onnxruntime');
  assert.match(cpu.why, /no GPU/);
  const broken = chooseEngine(env({ usable: false, problems: ["torch: No module named 'torch'"] }));
  assert.equal(broken.engine, 'onnxruntime');
  assert.match(broken.why, /No module named 'torch'/);
});

test('checking a real and a missing interpreter', async () => {
  const real = await checkPython(testPython());
  assert.equal(real.usable, true, real.problems.join('; '));
  assert.match(real.torch ?? '', /^\d+\.\d+/);
  assert.match(real.transformers ?? '', /^\d+\.\d+/);
  const missing = await checkPython('/nonexistent/python3');
  assert.equal(missing.usable, false);
  assert.match(missing.problems[0], /not found: install Python 3\.10\+ with torch and transformers, or set moeScope\.pythonPath/);
});

test('CLI env reports the interpreter and the choice auto would make', () => {
  assert.ok(fs.existsSync(cli), `${cli} is missing: run node esbuild.mjs first`);
  const r = spawnSync(process.execPath, [cli, 'env', '--json', '--python', testPython()], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { python: PythonEnvironment; onnxruntime: { backends: string[] }; auto: { engine: string } };
  assert.equal(report.python.usable, true);
  assert.ok(report.onnxruntime.backends.some((b) => b.startsWith('cpu')));
  assert.equal(report.auto.engine, chooseEngine(report.python).engine);
});

test('CLI: a bad --engine is a usage error; a Python that cannot run the worker says why, and ONNX Runtime still works', () => {
  const model = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
  const bad = spawnSync(process.execPath, [cli, 'trace', '--model', model, '--text', 'Answer:', '--engine', 'tensorflow'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--engine must be onnxruntime, pytorch or auto, not "tensorflow"/);
  const missing = spawnSync(
    process.execPath,
    [cli, 'trace', '--model', model, '--text', 'Answer:', '--engine', 'pytorch', '--python', '/nonexistent/python3'],
    { encoding: 'utf8' },
  );
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /could not start: \/nonexistent\/python3.*set moeScope\.pythonPath or --python/);
  // An interpreter that starts but lacks torch: its last words reach the user.
  const fake = path.join(tempDir('fake-python'), 'python');
  fs.writeFileSync(fake, `#!/bin/sh\necho "ModuleNotFoundError: No module named 'torch'" >&2\nexit 1\n`, { mode: 0o755 });
  const noTorch = spawnSync(process.execPath, [cli, 'trace', '--model', model, '--text', 'Answer:', '--engine', 'pytorch', '--python', fake], {
    encoding: 'utf8',
  });
  assert.equal(noTorch.status, 1);
  assert.match(noTorch.stderr, /exited with code 1 \(ModuleNotFoundError: No module named 'torch'\)/);
  const onnx = spawnSync(
    process.execPath,
    [cli, 'trace', '--model', model, '--text', 'Answer:', '--engine', 'onnxruntime', '--python', fake, '--cache', tempDir('cache')],
    { encoding: 'utf8' },
  );
  assert.equal(onnx.status, 0, onnx.stderr);
});

test('the status bar names the PyTorch engine with its device and dtype', () => {
  assert.equal(providerLabel({ engine: 'pytorch', executionProvider: 'cuda', dtype: 'bfloat16' }), 'PyTorch CUDA bf16');
  assert.equal(providerLabel({ engine: 'pytorch', executionProvider: 'cpu', dtype: 'float32' }), 'PyTorch CPU');
  assert.equal(providerLabel({ engine: 'onnxruntime', executionProvider: 'cuda', dtype: 'float16' }), 'CUDA fp16');
});
