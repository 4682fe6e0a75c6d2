/**
 * Precision is part of an evaluation's result, end to end through the command line on a 2-layer demo
 * model: the manifest and the summary record it, an evaluation is not resumed at another precision, and
 * shards computed at different precisions are not merged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeModel, tempDir, DEMO_CORPUS, REPO_ROOT } from '../support/models';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
const model = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
const cache = tempDir('cache');
const env = { ...process.env, XDG_CACHE_HOME: tempDir('xdg') };
const evalArgs = (out: string, precision: string, extra: string[] = []) => [
  'eval',
  ...['--model', model, '--data', DEMO_CORPUS, '--out', out, '--subjects', 'marketing', '--limit', '2', '--shots', '0'],
  ...['--batch-size', '2', '--provider', 'cpu', '--cache', cache, '--quiet', '--precision', precision, ...extra],
];
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env });

test('the manifest and summary record the precision; a resume at another precision is refused', () => {
  const dir = tempDir('run-int8');
  let r = run(evalArgs(dir, 'int8'));
  assert.equal(r.status, 0, r.stderr);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.loaded.precision, 'int8');
  const summary = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8'));
  assert.equal(summary.model.precision, 'int8');
  r = run(evalArgs(dir, 'fp32'));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /different weight precision \("?int8"? vs "?fp32"?; a run is never resumed or merged across precisions\)/);
  assert.equal(run(evalArgs(dir, 'int8')).status, 0, 'the same precision still resumes');
});

test('shards computed at different precisions are not merged', () => {
  const a = tempDir('shard-a');
  const b = tempDir('shard-b');
  assert.equal(run(evalArgs(a, 'fp32', ['--shard', '0/2'])).status, 0);
  assert.equal(run(evalArgs(b, 'int4', ['--shard', '1/2'])).status, 0);
  const r = run(['merge', a, b, '--out', tempDir('merged')]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /belongs to a different run .*weight precision \("?fp32"? vs "?int4"?/);
});
