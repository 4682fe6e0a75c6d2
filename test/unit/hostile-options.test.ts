/**
 * Low-severity hostile inputs (issue 21): duplicate mask entries, biases beyond float32, subjects named after
 * Object.prototype's members, terminal escapes in compared names, absurd sweep sizes, odd --ids spellings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { maskedPerLayer, parseBiasJson, parseMaskSpec, validateIntervention } from '../../src/analysis/interventions';
import { compareRuns } from '../../src/analysis/compare';
import { describeComparison } from '../../src/cli/experiments';
import { parseSpec, MAX_SWEEP_UNITS } from '../../src/sweep/spec';
import { parseIds } from '../../src/cli/modelCommands';
import type { RunSummary } from '../../src/shared/protocol';
import { DEMO_CORPUS, REPO_ROOT, tempDir } from '../support/models';
import { spawnSync } from 'node:child_process';

test('a mask entry given twice counts once (not "keep -328 of 64")', () => {
  const iv = { mask: parseMaskSpec('0:3,1:2,0:3,0:3'), bias: [] };
  assert.deepEqual(maskedPerLayer(iv, 2), [1, 1]);
  // Three experts of four masked in layer 0 with top-2 is refused; the same expert three times is not.
  validateIntervention(iv, { numLayers: 2, numExperts: 4, topK: 2 }, '--mask-experts');
  assert.throws(() => validateIntervention({ mask: parseMaskSpec('0:1,0:2,0:3'), bias: [] }, { numLayers: 2, numExperts: 4, topK: 2 }, '--mask-experts'));
});

test('a bias finite in float64 but not in float32 is refused by file, layer and expert', () => {
  assert.throws(() => parseBiasJson('{"1": {"2": 1e39}}', 'b.json'), /b\.json: layer 1, expert 2: bias 1e\+39 is beyond float32's range/);
  assert.deepEqual(parseBiasJson('{"1": {"2": 3e38}}', 'b.json'), [[1, 2, 3e38]]);
});

function summary(subjects: Record<string, number>): RunSummary {
  const perSubject = Object.fromEntries(
    Object.entries(subjects).map(([s, correct]) => [s, { subject: s, category: null, questions: 2, correct, accuracy: correct / 2 }]),
  );
  return {
    model: { path: '/m', family: 'olmoe', numLayers: 1, numExperts: 2, topK: 1, demo: false },
    dataset: { path: '/d', split: 'test', fingerprint: 'f' },
    shots: 0,
    tokenScope: 'answer',
    questions: 2 * Object.keys(subjects).length,
    complete: true,
    accuracy: { micro: 0.5, macro: 0.5, perSubject, perCategory: {} },
    layers: [{ layer: 0, activationCounts: [1, 1], neverActivated: [], expertAccuracy: [null, null], expertAccuracyCount: [0, 0] }],
  } as unknown as RunSummary;
}

test('subjects named constructor / toString / __proto__ compare as subjects, not NaN', () => {
  const a = JSON.parse('{"constructor": 1, "toString": 2, "__proto__": 1}') as Record<string, number>;
  const c = compareRuns(
    { label: 'A', runDir: '/a', summary: summary(a), questions: [] },
    { label: 'B', runDir: '/b', summary: summary({ anatomy: 1 }), questions: [] },
  );
  for (const row of c.accuracy.perSubject) for (const v of [row.a, row.b, row.delta]) assert.ok(v === null || Number.isFinite(v), JSON.stringify(row));
  assert.deepEqual(c.accuracy.perSubject.map((r) => r.subject).sort(), ['__proto__', 'anatomy', 'constructor', 'toString']);
  const text = describeComparison(c);
  assert.doesNotMatch(text, /NaN/);
});

test('terminal escape sequences in compared names are not printed raw', () => {
  const c = compareRuns(
    { label: 'A\u001b]0;pwned\u0007', runDir: '/a', summary: summary({ 'x\u001b[2J': 1 }), questions: [] },
    { label: 'B', runDir: '/b', summary: summary({ anatomy: 1 }), questions: [] },
  );
  const text = describeComparison(c);
  assert.ok(!text.includes('\u001b') && !text.includes('\u0007'), 'an escape or bell reached the output');
});

test('a SPEC whose product of units is absurd is refused before anything is planned', () => {
  const dir = tempDir('spec-size');
  fs.mkdirSync(path.join(dir, 'ckpt'));
  const file = path.join(dir, 'spec.json');
  assert.throws(
    () => parseSpec({ data: DEMO_CORPUS, models: ['ckpt'], shots: [0, 1, 2, 3, 4, 5], shards: 100_000 }, file),
    new RegExp(`field "shards" the SPEC makes 600000 units .* at most ${MAX_SWEEP_UNITS}`),
  );
});

test('--ids takes decimal integers only (not 1e3, 0x10)', () => {
  for (const bad of ['1e3', '0x10', '1.0', '-1', '']) assert.throws(() => parseIds(bad), /--ids must be comma-separated non-negative integers/, bad);
  assert.deepEqual(parseIds('1, 2,30'), [1, 2, 30]);
});

test('MOE_SCOPE_ARGV_FILE pointing into a folder of the user deletes nothing', () => {
  const dir = tempDir('victim');
  fs.writeFileSync(path.join(dir, 'argv.json'), '["help"]');
  fs.writeFileSync(path.join(dir, 'keep.txt'), 'keep');
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'dist', 'cli.js')], {
    encoding: 'utf8',
    env: { ...process.env, MOE_SCOPE_ARGV_FILE: path.join(dir, 'argv.json') },
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /not an argument file made by moe-scope/);
  assert.equal(fs.readFileSync(path.join(dir, 'keep.txt'), 'utf8'), 'keep');
  assert.ok(fs.existsSync(path.join(dir, 'argv.json')));
});
