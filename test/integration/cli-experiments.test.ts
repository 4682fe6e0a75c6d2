/**
 * The experiment workflow on the command line (the bundled dist/cli.js; needs `node esbuild.mjs` first):
 * eval a baseline, prune its never-activated experts, run the experiment, compare; and the messages for
 * bad intervention options.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, DEMO_CORPUS } from '../support/models';
import { demoEvalArgs, runCli } from '../support/cli';
import type { RunComparison, RunSummary } from '../../src/shared/protocol';
import type { QuestionResult, RunManifest } from '../../src/eval/runFolder';

const run = (args: string[]) => runCli(args);
const readJson = <T>(f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as T;
const questionsOf = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => (JSON.parse(l) as { questions: QuestionResult[] }).questions);

const work = tempDir('cli-exp');
const model = path.join(work, 'model');
const cache = path.join(work, 'cache');
const common = ['--provider', 'cpu', '--cache', cache, '--quiet'];

test("experiment --prune never-activated masks exactly the baseline's never-activated experts, and compare reports the paired outcome", () => {
  assert.equal(run(['make-demo-model', '--out', model, '--corpus', DEMO_CORPUS]).status, 0);
  const base = path.join(work, 'base');
  const e = run(demoEvalArgs({ model, out: base, cache, shots: 0, limit: 4 }, ['--subjects', 'marketing,world_religions']));
  assert.equal(e.status, 0, e.stderr);
  const baseSummary = readJson<RunSummary>(path.join(base, 'summary.json'));
  assert.equal(readJson<RunManifest>(path.join(base, 'manifest.json')).intervention, undefined);

  const pruned = path.join(work, 'pruned');
  const x = run(['experiment', '--baseline', base, '--prune', 'never-activated', '--out', pruned, ...common]);
  assert.equal(x.status, 0, x.stderr);
  const manifest = readJson<RunManifest>(path.join(pruned, 'manifest.json'));
  const expected = baseSummary.layers.flatMap((l) => l.neverActivated.map((e) => [l.layer, e]));
  assert.ok(expected.length > 0, 'the demo baseline leaves experts unused at the answer position');
  assert.deepEqual(manifest.intervention!.mask, expected);
  assert.equal(manifest.shots, 0);
  assert.deepEqual(manifest.subjects, ['marketing', 'world_religions']);
  const prunedSummary = readJson<RunSummary>(path.join(pruned, 'summary.json'));
  assert.deepEqual(prunedSummary.intervention, manifest.intervention);
  // A masked expert can never be chosen, so it has no activations in the experiment.
  for (const [l, ex] of expected) assert.equal(prunedSummary.layers[l].activationCounts[ex], 0, `layer ${l} expert ${ex}`);

  const c = run(['compare', base, pruned, '--json']);
  assert.equal(c.status, 0, c.stderr);
  const cmp = JSON.parse(c.stdout) as RunComparison;
  const a = new Map(questionsOf(base).map((q) => [q.id, q.correct]));
  const b = questionsOf(pruned);
  assert.equal(cmp.mcnemar.paired, b.length);
  assert.equal(cmp.mcnemar.b01, b.filter((q) => q.correct && a.get(q.id) === false).length);
  assert.equal(cmp.mcnemar.b10, b.filter((q) => !q.correct && a.get(q.id) === true).length);
  assert.equal(cmp.accuracy.micro.a, baseSummary.accuracy.micro);
  assert.equal(cmp.accuracy.micro.b, prunedSummary.accuracy.micro);
  assert.deepEqual(cmp.warnings, []);
  const text = run(['compare', base, pruned]);
  assert.equal(text.status, 0);
  assert.match(text.stdout, /McNemar \(paired 8\)/);
  assert.match(text.stdout, /experts masked in \d+ layers/);

  // Resuming a run folder under a different intervention is refused.
  const r = run(demoEvalArgs({ model, out: pruned, cache, shots: 0, limit: 4 }, ['--subjects', 'marketing,world_religions']));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /holds a run with a different intervention/);
});

test('trace and experiment refuse bad intervention options with the option or file, the field and the problem', () => {
  if (!fs.existsSync(path.join(model, 'config.json'))) assert.equal(run(['make-demo-model', '--out', model, '--corpus', DEMO_CORPUS]).status, 0);
  const t = (extra: string[]) => run(['trace', '--model', model, '--text', 'Answer:', '--provider', 'cpu', '--cache', cache, ...extra]);
  let r = t(['--mask-experts', '3:x']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--mask-experts: "3:x" is not LAYER:EXPERT/);
  r = t(['--mask-experts', '16:0']);
  assert.match(r.stderr, /--mask-experts: mask: layer 16 does not exist/);
  r = t(['--mask-experts', Array.from({ length: 57 }, (_, e) => `2:${e}`).join(',')]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /layer 2 would keep 7 of 64 experts, fewer than the 8/);
  const bias = path.join(work, 'bias.json');
  fs.writeFileSync(bias, JSON.stringify({ 1: { 70: 2 } }));
  r = t(['--router-bias', bias]);
  assert.match(r.stderr, new RegExp(`--router-bias ${bias.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: bias: expert 70 of layer 1 does not exist`));
  fs.writeFileSync(bias, JSON.stringify({ 1: { 5: 'up' } }));
  assert.match(t(['--router-bias', bias]).stderr, /bias\.json: layer 1, expert 5: bias must be a finite number/);
  assert.match(t(['--router-bias', path.join(work, 'missing.json')]).stderr, /missing\.json: cannot read it \(no such file\)/);

  // A good one: the JSON says what was applied and the masked expert is gone from every token.
  fs.writeFileSync(bias, JSON.stringify({ 1: { 5: 3 } }));
  r = t(['--mask-experts', '0:1,0:2', '--router-bias', bias, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.intervention.mask, [
    [0, 1],
    [0, 2],
  ]);
  assert.deepEqual(j.intervention.bias, [[1, 5, 3]]);
  for (const tok of j.topExperts[0]) assert.ok(!tok.includes(1) && !tok.includes(2));
  for (const tok of j.routerProbs[0]) assert.equal(tok[1], 0);

  const u = run(['experiment', '--baseline', work, '--prune', 'never-activated', '--prune-below-count', '2', '--out', path.join(work, 'x')]);
  assert.equal(u.status, 2);
  assert.match(u.stderr, /give exactly one of/);
  assert.match(run(['experiment', '--baseline', work, '--steer-top-accuracy', '0.1', '--out', path.join(work, 'x')]).stderr, /needs --bias B/);
  assert.match(run(['experiment', '--baseline', work, '--prune', 'never-activated', '--out', path.join(work, 'x')]).stderr, /manifest\.json: not found/);
});
