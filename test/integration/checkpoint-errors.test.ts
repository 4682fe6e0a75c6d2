/** Bad model folders: each gets one clear message naming the file and what is wrong. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import { SafetensorsFile, writeSafetensors } from '../../src/engines/onnxruntime/formats/safetensors';
import { EngineFailure } from '../../src/shared/protocol';
import { makeModel, tempDir } from '../support/models';

const base = makeModel({ family: 'olmoe', overrides: { layers: 2 } });

function copyModel(): string {
  const dir = tempDir('bad');
  for (const f of fs.readdirSync(base)) fs.copyFileSync(path.join(base, f), path.join(dir, f));
  return dir;
}

async function loadError(dir: string): Promise<string> {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
  } catch (e) {
    assert.ok(e instanceof EngineFailure, `expected an EngineFailure, got ${e}`);
    assert.equal(e.code, 'bad-model');
    return e.message;
  } finally {
    await engine.dispose();
  }
  assert.fail(`loading ${dir} should have failed`);
}

test('the generated model itself loads (the cases below differ from it in one way each)', async () => {
  const engine = new Engine();
  const info = await engine.load(base, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
  assert.equal(info.numExperts, 64);
  await engine.dispose();
});

test('a folder without config.json', async () => {
  const dir = copyModel();
  fs.rmSync(path.join(dir, 'config.json'));
  const msg = await loadError(dir);
  assert.match(msg, /no config\.json/);
  assert.ok(msg.includes(dir));
});

test('an MoE family the ONNX engine does not build names the PyTorch engine and lists the supported ones', async () => {
  const dir = copyModel();
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'jamba' }));
  const msg = await loadError(dir);
  assert.match(msg, /model_type "jamba" is a Mixture-of-Experts family the ONNX Runtime engine does not build/);
  assert.match(msg, /--engine pytorch/);
  assert.match(msg, /olmoe, mixtral, qwen2_moe/);
  assert.ok(msg.includes('config.json'));
});

test('an unknown model_type lists the supported ones and names the other engine', async () => {
  const dir = copyModel();
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'not_a_model' }));
  const msg = await loadError(dir);
  assert.match(msg, /unsupported model_type "not_a_model"/);
  assert.match(msg, /deepseek_v3/);
  assert.match(msg, /PyTorch engine \(--engine pytorch\)/);
});

test('a dense (non-MoE) model is named as such', async () => {
  const dir = copyModel();
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'llama' }));
  assert.match(await loadError(dir), /"llama" is a dense model \(no experts\)/);
  delete cfg.num_experts;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  assert.match(await loadError(dir), /dense model: MoE Scope needs a Mixture-of-Experts checkpoint/);
});

test('a truncated safetensors file names the file, the tensor and the offsets', async () => {
  const dir = copyModel();
  const file = path.join(dir, 'model.safetensors');
  const size = fs.statSync(file).size;
  fs.truncateSync(file, Math.floor(size * 0.6));
  const msg = await loadError(dir);
  assert.ok(msg.includes(file), msg);
  assert.match(msg, /tensor "[^"]+": data_offsets \[\d+, \d+\].*truncated/);
});

test('a safetensors file cut inside its header, and one whose header is not JSON', () => {
  const dir = tempDir('st');
  const file = path.join(dir, 'x.safetensors');
  writeSafetensors(file, [{ name: 'a', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(file, bytes.subarray(0, 20));
  assert.throws(() => SafetensorsFile.open(file), /header length \d+ at offset 0 exceeds the file \(size 20 bytes\)/);
  const bad = Buffer.from(bytes);
  bad.write('!', 8);
  fs.writeFileSync(file, bad);
  assert.throws(() => SafetensorsFile.open(file), /header \(bytes 8\.\.\d+\) is not valid JSON/);
  const lying = Buffer.from(bytes.toString('latin1').replace('"shape":[4]', '"shape":[5]'), 'latin1');
  fs.writeFileSync(file, lying);
  assert.throws(() => SafetensorsFile.open(file), /tensor "a": data_offsets \[0, 16\] hold 16 bytes but F32 \[5\] needs 20/);
});

function rewriteTensors(dir: string, edit: (tensors: { name: string; dtype: 'F32'; shape: number[]; data: Float32Array }[]) => void): void {
  const file = path.join(dir, 'model.safetensors');
  const st = SafetensorsFile.open(file);
  const tensors = [...st.tensors.values()].map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: st.readFloat32(t.name) }));
  edit(tensors);
  writeSafetensors(file, tensors);
}

test('a missing tensor is named with its expected shape', async () => {
  const dir = copyModel();
  rewriteTensors(dir, (ts) =>
    ts.splice(
      ts.findIndex((t) => t.name === 'model.layers.1.self_attn.k_norm.weight'),
      1,
    ),
  );
  assert.match(await loadError(dir), /tensor "model\.layers\.1\.self_attn\.k_norm\.weight" is missing \(expected shape \[64\]/);
});

test('a tensor of the wrong shape names both shapes', async () => {
  const dir = copyModel();
  rewriteTensors(dir, (ts) => {
    const t = ts.find((x) => x.name === 'model.layers.0.mlp.gate.weight')!;
    t.shape = [32, 128];
  });
  const msg = await loadError(dir);
  assert.match(msg, /model\.safetensors: tensor "model\.layers\.0\.mlp\.gate\.weight" has shape \[32, 128\] but config\.json implies \[64, 64\]/);
});

test('a missing tokenizer says what is expected', async () => {
  const dir = copyModel();
  fs.rmSync(path.join(dir, 'tokenizer.json'));
  const msg = await loadError(dir);
  assert.match(msg, /tokenizer\.json/);
  assert.ok(msg.includes(dir));
});

test('a sharded checkpoint whose index names a missing shard', () => {
  const dir = makeModel({ family: 'olmoe', shards: 2, overrides: { layers: 2 } });
  fs.rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
  assert.throws(() => Checkpoint.open(dir), /model\.safetensors\.index\.json: shard "model-00002-of-00002\.safetensors" listed in weight_map does not exist/);
});
