/** Comparing runs: run B is never run A (issue 24, item 11). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runsOtherThan, sameRun } from '../../src/eval/runPairs';
import { dispatch } from '../../src/cli/dispatch';

test('the run B choices leave out run A, however its path is written', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-pairs-'));
  try {
    const a = path.join(root, 'base');
    const b = path.join(root, 'base--prune');
    fs.mkdirSync(a);
    fs.mkdirSync(b);
    fs.symlinkSync(a, path.join(root, 'link'));
    const runs = [{ dir: a }, { dir: b }];
    assert.deepEqual(runsOtherThan(runs, a), [{ dir: b }]);
    assert.deepEqual(runsOtherThan(runs, `${a}/`), [{ dir: b }]);
    assert.deepEqual(runsOtherThan(runs, path.join(root, 'link')), [{ dir: b }], 'a link to run A is run A');
    assert.equal(sameRun(a, path.join(b, '..', 'base')), true);
    assert.equal(sameRun(a, b), false);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('moe-scope compare refuses to compare a run with itself (exit 2, before reading anything)', async () => {
  const err: string[] = [];
  const code = await dispatch(['compare', '/nonexistent/run', '/nonexistent/run/'], { out: () => {}, err: (s) => err.push(s) });
  assert.equal(code, 2);
  assert.match(err.join('\n'), /^moe-scope compare: run A and run B are the same run/);
});
