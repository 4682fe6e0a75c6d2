/** One error type for every reader of outside files, and one JSON reader: file, place and problem. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../../src/shared/inputError';
import { readJson, readJsonAsync } from '../../src/shared/readJson';
import { Checkpoint, CheckpointError } from '../../src/engines/onnxruntime/checkpoint';
import { SafetensorsError, SafetensorsFile } from '../../src/engines/onnxruntime/formats/safetensors';
import { ConfigError } from '../../src/engines/onnxruntime/families';
import { TokenizerLoadError, loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { CategoriesError, parseCategories } from '../../src/mmlu/categories';
import { RunFolderError, readManifest } from '../../src/eval/runFolder';
import { SummaryError } from '../../src/eval/summaryCheck';
import { loadDataset } from '../../src/mmlu/load';
import { tempDir } from '../support/models';

test('every reader error class is an InputError', () => {
  for (const E of [CheckpointError, SafetensorsError, ConfigError, RunFolderError, SummaryError]) {
    const e = new E('/x/f.json', 'broken', 'field "a"');
    assert.ok(e instanceof InputError && e instanceof E);
    assert.equal(e.message, '/x/f.json: field "a": broken');
    assert.equal(e.name, E.name);
  }
  const t = new TokenizerLoadError('/x/tokenizer.json: no "model" object', '/x/tokenizer.json');
  assert.ok(t instanceof InputError);
  assert.equal(t.problem, 'no "model" object');
  assert.equal(t.message, '/x/tokenizer.json: no "model" object');
  const c = new CategoriesError('/x/categories.json', 7, 'bad');
  assert.ok(c instanceof InputError);
  assert.equal(c.message, '/x/categories.json:7: bad');
});

test('readers report through InputError with the file: checkpoint, safetensors, tokenizer, categories, run manifest', async () => {
  const dir = tempDir('inputs');
  fs.writeFileSync(path.join(dir, 'config.json'), '{\n  "model_type": "olmoe",\n  oops\n}');
  assert.throws(
    () => Checkpoint.open(dir),
    (e: Error) => e instanceof InputError && e.message.startsWith(`${path.join(dir, 'config.json')}:3: not valid JSON`),
  );
  fs.writeFileSync(path.join(dir, 'config.json'), 'null');
  assert.throws(
    () => Checkpoint.open(dir),
    (e: Error) => e instanceof InputError && e.message === `${path.join(dir, 'config.json')}: the top level must be a JSON object, not null`,
  );
  fs.writeFileSync(path.join(dir, 'x.safetensors'), 'abc');
  assert.throws(
    () => SafetensorsFile.open(path.join(dir, 'x.safetensors')),
    (e: Error) => e instanceof InputError && (e as InputError).file === path.join(dir, 'x.safetensors'),
  );
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '[]');
  await assert.rejects(loadTokenizer(dir), (e: Error) => e instanceof InputError && (e as InputError).file.endsWith('tokenizer.json'));
  assert.throws(
    () => parseCategories('{"subcategories": 1}', path.join(dir, 'categories.json')),
    (e: Error) => e instanceof InputError,
  );
  fs.writeFileSync(path.join(dir, 'manifest.json'), '[1]');
  assert.throws(
    () => readManifest(dir),
    (e: Error) => e instanceof InputError && e.message === `${path.join(dir, 'manifest.json')}: not a run manifest (expected an object, found an array)`,
  );
});

test('readJson: syntax errors with their line, size limits before reading, FIFOs and folders refused, missing files named', async () => {
  const dir = tempDir('readjson');
  const f = path.join(dir, 'a.json');
  fs.writeFileSync(f, '{\n"a": 1,\n"b": oops\n}\n');
  for (const read of [readJson, readJsonAsync]) {
    await assert.rejects(
      async () => read(f),
      (e: Error) => e instanceof InputError && (e as InputError).place === 3 && e.message.startsWith(`${f}:3: not valid JSON`),
    );
    await assert.rejects(
      async () => read(path.join(dir, 'none.json')),
      (e: Error) => e instanceof InputError && e.message === `${path.join(dir, 'none.json')}: no such file`,
    );
    await assert.rejects(async () => read(dir), /not a regular file \(a folder\)/);
  }
  fs.writeFileSync(f, JSON.stringify({ big: 'x'.repeat(1000) }));
  assert.throws(() => readJson(f, { maxBytes: 100 }), new RegExp(`${f}: \\d+ bytes, more than the 100 this file may have`));
  assert.deepEqual(Object.keys(readJson(f) as object), ['big']);
  const fifo = path.join(dir, 'fifo.json');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo is needed for this test');
  await assert.rejects(
    readJsonAsync(fifo, { error: SummaryError }),
    (e: Error) => e instanceof SummaryError && e.message === `${fifo}: not a regular file (a FIFO)`,
  );
});

test('MMLU data: a FIFO is refused at once, a missing path is named, both as InputError', async () => {
  const dir = tempDir('mmlu-fifo');
  const fifo = path.join(dir, 'anatomy_test.csv');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo is needed for this test');
  await assert.rejects(loadDataset(fifo), (e: Error) => e instanceof InputError && e.message.startsWith(`${fifo}: not a regular file (a FIFO)`));
  await assert.rejects(loadDataset(path.join(dir, 'none')), (e: Error) => e instanceof InputError && (e as InputError).file === path.join(dir, 'none'));
});
