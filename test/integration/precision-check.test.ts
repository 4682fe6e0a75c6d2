/**
 * `moe-scope precision-check` on the demo model: traces prompts at fp32 and int8, prints the agreement,
 * stores it where the extension reads it, and refuses fp32 as the compared precision.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { readPrecisionCheck } from '../../src/shared/precisionCheck';
import { makeModel, tempDir, REPO_ROOT } from '../support/models';

const CLI = path.join(REPO_ROOT, 'dist', 'cli.js');

test('precision-check int8: report, stored result, and fp32 refused', () => {
  const model = makeModel({ family: 'olmoe' });
  const cache = tempDir('precision-check');
  const out = execFileSync(process.execPath, [CLI, 'precision-check', '--model', model, '--precision', 'int8', '--prompts', '3', '--cache', cache], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  console.log(out);
  assert.match(out, /int8 vs fp32 on 3 MMLU prompts/);
  assert.match(out, /top-k sets identical: \d+\.\d%/);
  const stored = readPrecisionCheck(cache, model, 'int8');
  assert.ok(stored, 'the result is stored where the extension reads it');
  assert.equal(stored.prompts, 3);
  assert.equal(stored.perLayer.length, 16);
  assert.ok(stored.setAgreement > 0.8 && stored.setAgreement < 1, `set agreement ${stored.setAgreement}`);
  assert.ok(stored.maxProbDiff > 0 && stored.maxProbDiff < 0.1, `max probability difference ${stored.maxProbDiff}`);
  assert.equal(readPrecisionCheck(cache, model, 'int4'), undefined, 'nothing stored for a precision not checked');
  const refused = spawnSync(process.execPath, [CLI, 'precision-check', '--model', model, '--precision', 'fp32'], { encoding: 'utf8' });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /--precision must name a precision other than fp32/);
});
