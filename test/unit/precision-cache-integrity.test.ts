/**
 * The graph cache's integrity record (issue 23, bad input): a folder written for another precision, a file
 * truncated, missing, or rewritten in place at the same size is reported (and so rebuilt by the runtime);
 * records from before modification times were kept are checked by size alone. And the session option int4
 * loads with.
 */
import { test } from 'node:test';
import { precisionSessionOptions } from '../../src/engines/onnxruntime/runtime';
import { EXPERT_KERNEL } from '../../src/engines/onnxruntime/precision/prepareQuantized';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkCacheIntegrity, writeCacheIntegrity, INTEGRITY_FILE } from '../../src/engines/onnxruntime/precision/cache';
import { tempDir } from '../support/models';

function cacheFolder(): string {
  const dir = tempDir('cache-integrity');
  fs.writeFileSync(path.join(dir, 'model.onnx'), 'graph');
  fs.writeFileSync(path.join(dir, 'q8-experts-fc1.bin'), Buffer.alloc(4096, 7));
  writeCacheIntegrity(dir, 'int8');
  return dir;
}

test('a sound cache passes; another precision, a truncated, a missing and a same-size rewritten file are each named', () => {
  const dir = cacheFolder();
  assert.equal(checkCacheIntegrity(dir, 'int8'), null);
  assert.equal(checkCacheIntegrity(dir, 'int4'), 'it was built for precision int8, not int4');

  const truncated = cacheFolder();
  fs.truncateSync(path.join(truncated, 'q8-experts-fc1.bin'), 100);
  assert.equal(checkCacheIntegrity(truncated, 'int8'), 'q8-experts-fc1.bin is 100 bytes, 4096 were written');

  const missing = cacheFolder();
  fs.rmSync(path.join(missing, 'model.onnx'));
  assert.equal(checkCacheIntegrity(missing, 'int8'), 'model.onnx is missing');

  const rewritten = cacheFolder();
  const file = path.join(rewritten, 'q8-experts-fc1.bin');
  const built = fs.statSync(file).mtime;
  fs.writeFileSync(file, Buffer.alloc(4096, 9)); // same size, other bytes
  fs.utimesSync(file, built, new Date(built.getTime() + 2000)); // a later write, whatever the clock's resolution
  assert.match(checkCacheIntegrity(rewritten, 'int8') ?? '', /^q8-experts-fc1\.bin was modified after the cache was built/);
});

test('a record from before modification times were kept is checked by size only; a quantised cache without a record is refused', () => {
  const dir = cacheFolder();
  const record = JSON.parse(fs.readFileSync(path.join(dir, INTEGRITY_FILE), 'utf8')) as Record<string, unknown>;
  delete record.modified;
  fs.writeFileSync(path.join(dir, INTEGRITY_FILE), JSON.stringify(record));
  const file = path.join(dir, 'q8-experts-fc1.bin');
  fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
  assert.equal(checkCacheIntegrity(dir, 'int8'), null);
  fs.rmSync(path.join(dir, INTEGRITY_FILE));
  assert.equal(checkCacheIntegrity(dir, 'int8'), `${INTEGRITY_FILE} is missing`);
  assert.equal(checkCacheIntegrity(dir, 'fp32'), null, 'a float cache from before the record is checked by session creation');
});

test("int4 sessions skip ONNX Runtime's prepacking (its QMoE experts' second, larger copy); int8 keeps it (its MatMulNBits experts multiply in int8 only from prepacked weights)", () => {
  assert.deepEqual(precisionSessionOptions('int4'), { extra: { session: { disable_prepacking: '1' } } });
  for (const p of ['fp32', 'fp16', 'bf16', 'int8'] as const) assert.deepEqual(precisionSessionOptions(p), {}, p);
  assert.equal(EXPERT_KERNEL[4], 'qmoe', 'the kernel that runs without prepacking');
  assert.equal(EXPERT_KERNEL[8], 'matmulnbits');
});
