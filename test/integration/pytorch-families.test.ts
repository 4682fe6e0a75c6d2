/**
 * The PyTorch engine through the host's EngineClient on checkpoints transformers wrote
 * (python/tests/tiny_families.py): routing rows are MoE layers labelled by decoder layer (qwen2_moe with
 * mlp_only_layers=[0] has rows for decoder layers 1 and 2), the routing description reaches the host, and an
 * unknown model_type is refused with the supported families and the other engine named. Needs .venv.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decoderLayerOfRows, rowLabel } from '../../src/analysis/layers';
import { EngineClient } from '../../src/engines/client/engineClient';
import { pythonChannel } from '../../src/engines/client/pythonWorker';
import { MOE_FAMILIES } from '../../src/shared/protocol';
import { REPO_ROOT } from '../support/models';
import { testPython } from '../support/python';

process.env.MOE_SCOPE_WORKER_DIR ??= path.join(REPO_ROOT, 'python');

function buildTiny(family: string, dir: string): void {
  execFileSync(testPython(), ['-c', `import sys; from tiny_families import build; build(sys.argv[1], sys.argv[2])`, family, dir], {
    env: { ...process.env, PYTHONPATH: [path.join(REPO_ROOT, 'python', 'tests'), path.join(REPO_ROOT, 'python')].join(path.delimiter) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

test('PyTorch engine via EngineClient: rows labelled by decoder layer, routing described, unknown families refused', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-families-'));
  const client = new EngineClient({ channel: pythonChannel(testPython()) });
  try {
    const qwen = path.join(root, 'qwen2_moe');
    buildTiny('qwen2_moe', qwen);
    const info = await client.call('load', { modelPath: qwen, options: { executionProvider: 'cpu' } });
    assert.equal(info.engine, 'pytorch');
    assert.deepEqual(info.moeLayers, [1, 2]);
    assert.equal(info.numLayers, 2);
    assert.equal(info.numDecoderLayers, 3);
    assert.equal(info.sharedExperts, 1);
    assert.deepEqual(info.routing && [info.routing.kind, info.routing.scoreFunction, info.routing.routedScalingFactor], ['softmax-topk', 'softmax', 1]);
    const trace = await client.call('trace', { input: { ids: [5, 17, 250, 3, 99, 42] }, options: { includeProbs: false, includeLastLogits: false } });
    assert.equal(trace.routing.numLayers, 2);
    assert.deepEqual(decoderLayerOfRows(trace.model), [1, 2]);
    assert.equal(rowLabel(trace.model, 0), 'layer 1');

    const v3 = path.join(root, 'deepseek_v3');
    buildTiny('deepseek_v3', v3);
    const v3info = await client.call('load', { modelPath: v3, options: { executionProvider: 'cpu' } });
    assert.deepEqual(v3info.moeLayers, [1, 2]);
    assert.equal(v3info.routing?.kind, 'sigmoid-bias-group');
    assert.equal(v3info.routing?.scoreFunction, 'sigmoid');
    assert.equal(v3info.routing?.routedScalingFactor, 2.5);
    assert.equal(v3info.topK, 4);
    assert.equal(v3info.numExperts, 16);

    const llama = path.join(root, 'llama');
    fs.mkdirSync(llama);
    fs.copyFileSync(path.join(qwen, 'tokenizer.json'), path.join(llama, 'tokenizer.json'));
    fs.writeFileSync(path.join(llama, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64, vocab_size: 300 }));
    await assert.rejects(client.call('load', { modelPath: llama, options: { executionProvider: 'cpu' } }), (e: Error) => {
      assert.match(e.message, /model_type 'llama' is not an MoE family the PyTorch engine runs/);
      for (const f of MOE_FAMILIES) assert.ok(e.message.includes(f), `the refusal lists ${f}`);
      assert.match(e.message, /ONNX Runtime engine/);
      return true;
    });
  } finally {
    await client.dispose();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
