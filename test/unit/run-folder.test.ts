/** Finding the newest run's summary without reading every run folder; workspace summaries are untrusted input. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listRuns, newestRunSummary, readSummary, readSummaryAsync } from '../../src/eval/runFolder';
import { checkSummary, MAX_SUMMARY_BYTES } from '../../src/eval/summaryCheck';
import { tempDir } from '../support/models';
import { soundSummary } from '../support/summaries';

/** A sound summary of L layers x E experts with `questions` questions and one subject's specialisation rows. */
function summary(questions: number, L = 2, E = 4) {
  return { ...soundSummary(questions, L, E), subjectSpecialisation: { anatomy: Array.from({ length: L }, () => Array(E).fill(0.25)) } };
}

function run(root: string, name: string, text: string | null, mtimeSeconds: number): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  if (text === null) return dir;
  const file = path.join(dir, 'summary.json');
  fs.writeFileSync(file, text);
  fs.utimesSync(file, mtimeSeconds, mtimeSeconds);
  return dir;
}

test('newestRunSummary picks the most recently written sound summary, skipping unreadable ones and runs without one', async () => {
  const a = tempDir('runs-a');
  const b = tempDir('runs-b');
  run(a, 'old', JSON.stringify(summary(1)), 1_000);
  run(b, 'newer', JSON.stringify(summary(2)), 2_000);
  run(b, 'torn', '{"questions": 3', 3_000);
  run(b, 'huge-claim', JSON.stringify({ ...summary(4), model: { path: '/m', family: 'olmoe', numLayers: 2, numExperts: 1e8, topK: 8, demo: false } }), 4_000);
  run(a, 'no-summary-yet', null, 0);
  const skipped: string[] = [];
  const got = await newestRunSummary([a, b, path.join(a, 'missing')], (m) => skipped.push(m));
  assert.equal(got?.dir, path.join(b, 'newer'));
  assert.equal(got?.summary.questions, 2);
  assert.equal(skipped.length, 2);
  assert.match(skipped[0], /huge-claim\/summary\.json: field "model\.numExperts" is 100000000, not an integer from 1 to 4096/);
  assert.match(skipped[1], /torn\/summary\.json:1: not valid JSON/);
  assert.equal(await newestRunSummary([tempDir('runs-empty')]), null);
});

test('summaries are bounded: absurd dimensions, arrays that disagree with them, non-numbers and oversized files are refused naming file and field', async () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each case corrupts a different field of parsed JSON
  const cases: [string, (s: Record<string, any>) => void, RegExp][] = [
    ['layers', (s) => (s.model.numLayers = 1e9), /field "model\.numLayers" is 1000000000/],
    ['cells', (s) => ((s.model.numLayers = 1024), (s.model.numExperts = 4096)), /exceed 1048576 cells/],
    ['topk', (s) => (s.model.topK = 5), /field "model\.topK" is 5/],
    ['short-layers', (s) => s.layers.pop(), /field "layers" has 1 entries, expected model\.numLayers = 2/],
    ['counts', (s) => s.layers[1].activationCounts.push(1), /layers\[1\]\.activationCounts has 5 entries, expected 4/],
    ['nan', (s) => (s.layers[0].activationCounts[2] = 'x'), /layers\[0\]\.activationCounts\[2\] is "x", not a finite number/],
    ['spec', (s) => (s.subjectSpecialisation.anatomy[1] = [1]), /subjectSpecialisation\.anatomy\[1\] has 1 entries/],
    ['null', (s) => Object.keys(s).forEach((k) => delete s[k]), /field "model" is missing/],
  ];
  for (const [name, spoil, expected] of cases) {
    const s = summary(1);
    spoil(s);
    const dir = run(tempDir('bounds'), name, JSON.stringify(s), 1);
    assert.throws(
      () => readSummary(dir),
      (e: Error) => expected.test(e.message) && e.message.includes(path.join(dir, 'summary.json')),
      name,
    );
    await assert.rejects(readSummaryAsync(dir), expected, name);
  }
  assert.throws(() => checkSummary(null, 'f.json'), /^Error: f\.json: not an object$|f\.json: not an object/);
  const big = run(tempDir('bounds'), 'big', '', 1);
  fs.truncateSync(path.join(big, 'summary.json'), MAX_SUMMARY_BYTES + 1);
  await assert.rejects(readSummaryAsync(big), /summary\.json: \d+ bytes, more than the \d+ this file may have/);
  assert.equal(readSummary(run(tempDir('bounds'), 'fine', JSON.stringify(summary(3)), 1))?.questions, 3);
});

test('listRuns lists run folders with a manifest, newest first, showing damaged files as missing', async () => {
  const root = tempDir('runs-list');
  const good = run(root, 'good', JSON.stringify(summary(5)), 1);
  fs.writeFileSync(path.join(good, 'manifest.json'), JSON.stringify({ format: 'moe-scope.run', version: 2, model: { files: {} } }));
  const bad = run(root, 'bad', JSON.stringify({ ...summary(1), model: { numLayers: 1e9 } }), 1);
  fs.writeFileSync(path.join(bad, 'manifest.json'), 'null');
  fs.utimesSync(bad, 10, 10);
  fs.utimesSync(good, 20, 20);
  run(root, 'no-manifest', JSON.stringify(summary(2)), 1);
  const runs = await listRuns(root);
  assert.deepEqual(
    runs.map((r) => path.basename(r.dir)),
    ['good', 'bad'],
  );
  assert.equal(runs[0].summary?.questions, 5);
  assert.ok(runs[0].manifest);
  assert.equal(runs[1].summary, null);
  assert.equal(runs[1].manifest, null);
  assert.deepEqual(await listRuns(path.join(root, 'missing')), []);
});
