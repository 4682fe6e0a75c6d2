/** Finding the newest run's summary without reading every run folder. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { newestRunSummary } from '../../src/eval/runFolder';
import { tempDir } from '../support/models';

function run(root: string, name: string, summary: string | null, mtimeSeconds: number): void {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  if (summary === null) return;
  const file = path.join(dir, 'summary.json');
  fs.writeFileSync(file, summary);
  fs.utimesSync(file, mtimeSeconds, mtimeSeconds);
}

test('newestRunSummary picks the most recently written summary, skipping unreadable ones and runs without one', () => {
  const a = tempDir('runs-a');
  const b = tempDir('runs-b');
  run(a, 'old', JSON.stringify({ questions: 1 }), 1_000);
  run(b, 'newer', JSON.stringify({ questions: 2 }), 2_000);
  run(b, 'torn', '{"questions": 3', 3_000);
  run(a, 'no-summary-yet', null, 0);
  const got = newestRunSummary([a, b, path.join(a, 'missing')]);
  assert.equal(got?.dir, path.join(b, 'newer'));
  assert.equal((got?.summary as unknown as { questions: number }).questions, 2);
  assert.equal(newestRunSummary([tempDir('runs-empty')]), null);
});
