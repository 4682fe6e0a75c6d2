/**
 * A sweep SPEC with a pruning grid (criterion x ratio) run locally on the demo model (dist/cli.js; needs
 * `node esbuild.mjs` first): every grid point becomes a masking experiment with the plan `experiment --prune-by`
 * derives, and the sweep writes one table of accuracy vs experts removed per criterion with McNemar's test
 * against the baseline, recomputed here from the run folders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, DEMO_CORPUS } from '../support/models';
import { demoEvalArgs, runCli } from '../support/cli';
import { mcnemar } from '../../src/analysis/compare';
import type { QuestionResult, RunManifest } from '../../src/eval/runFolder';
import type { RunSummary } from '../../src/shared/protocol';
import type { PruningTableRow } from '../../src/sweep/pruningGrid';

const run = (args: string[]) => runCli(args);
const readJson = <T>(f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as T;
const questionsOf = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => (JSON.parse(l) as { questions: QuestionResult[] }).questions);

test('a ratio x criterion pruning grid runs locally and lands in one table with McNemar against the baseline', () => {
  const work = tempDir('sweep-prune');
  const model = path.join(work, 'model');
  const cache = path.join(work, 'cache');
  const base = path.join(work, 'base');
  assert.equal(run(['make-demo-model', '--out', model, '--corpus', DEMO_CORPUS]).status, 0);
  const e = run(demoEvalArgs({ model, out: base, cache, shots: 0, limit: 3 }, ['--subjects', 'marketing']));
  assert.equal(e.status, 0, e.stderr);
  const spec = {
    data: DEMO_CORPUS,
    subjects: ['marketing'],
    limit: 3,
    provider: 'cpu',
    cache,
    shots: [0],
    tokenScopes: ['answer'],
    models: [{ name: 'demo', path: model }],
    interventions: [{ name: 'none' }],
    pruning: { baseline: base, criteria: ['count', 'man'], ratios: [0.5, 0.85], mode: 'global' },
  };
  const specFile = path.join(work, 'spec.json');
  fs.writeFileSync(specFile, JSON.stringify(spec));
  const out = path.join(work, 'sweep');
  const s = run(['sweep', specFile, '--out', out]);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stderr, /pruning grid: accuracy vs experts removed/);

  const table = readJson<{ rows: PruningTableRow[] }>(path.join(out, 'pruning-table.json')).rows;
  assert.deepEqual(table.map((r) => `${r.criterion}@${r.ratio}`).sort(), ['count@0.5', 'count@0.85', 'man@0.5', 'man@0.85']);
  const rows = readJson<{ experiments: { name: string; runDir: string }[] }>(path.join(out, 'sweep-summary.json')).experiments;
  const baseQuestions = questionsOf(base);
  const baseSummary = readJson<RunSummary>(path.join(base, 'summary.json'));
  const E = baseSummary.model.numExperts * baseSummary.model.numLayers;
  for (const r of table) {
    const runDir = rows.find((x) => x.name === r.experiment)!.runDir;
    const manifest = readJson<RunManifest>(path.join(runDir, 'manifest.json'));
    const summary = readJson<RunSummary>(path.join(runDir, 'summary.json'));
    assert.equal(r.expertsRemoved, manifest.intervention!.mask.length, `${r.experiment}: experts removed = the mask it ran under`);
    assert.equal(r.expertsRemoved, Math.floor(r.ratio * E), 'global ratio of all (layer, expert) pairs');
    // The mask is the plan `experiment --prune-by` derives from the same baseline.
    const dry = run([
      'experiment',
      '--baseline',
      base,
      '--prune-by',
      r.criterion,
      '--ratio',
      String(r.ratio),
      '--global',
      '--out',
      path.join(work, 'dry'),
      '--dry-run',
    ]);
    assert.equal(dry.status, 0, dry.stderr);
    assert.deepEqual(manifest.intervention!.mask, (JSON.parse(dry.stdout) as { intervention: { mask: unknown } }).intervention.mask);
    assert.equal(r.accuracy, summary.accuracy.micro);
    assert.equal(r.baselineAccuracy, baseSummary.accuracy.micro);
    const m = mcnemar(baseQuestions, questionsOf(runDir));
    assert.deepEqual(r.mcnemar, { paired: m.paired, b01: m.b01, b10: m.b10, pValue: m.pValue });
    assert.equal(m.paired, 3);
  }
  const csv = fs.readFileSync(path.join(out, 'pruning-table.csv'), 'utf8').trim().split('\n');
  assert.equal(csv.length, 1 + table.length);
  // A SPEC naming a missing baseline is refused with the field.
  fs.writeFileSync(specFile, JSON.stringify({ ...spec, pruning: { ...spec.pruning, baseline: path.join(work, 'nope') } }));
  const bad = run(['sweep', specFile, '--out', path.join(work, 'sweep2')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /field "pruning.baseline" .*has no summary.json/);
});
