/**
 * Hostile sweeps (issue 21): a changed SPEC re-runs what changed instead of reporting the old results; a
 * crafted sweep.json cannot make a merge write outside the sweep folder; Slurm scripts cannot be split
 * into commands by a line break in a path.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSpec } from '../../src/sweep/spec';
import { buildPlan, experimentMerged, readPlan, writePlan } from '../../src/sweep/plan';
import { mergeExperiment } from '../../src/sweep/local';
import { writeSlurmScripts } from '../../src/sweep/slurm';
import { assertWritableInside } from '../../src/shared/safeFiles';
import { DEMO_CORPUS, tempDir } from '../support/models';

const dir = tempDir('sweep-safety');
fs.mkdirSync(path.join(dir, 'ckpt'));
const SPEC_FILE = path.join(dir, 'spec.json');
const runtime = { node: '/usr/bin/node', cli: '/opt/moe/dist/cli.js' };
const spec = (extra: Record<string, unknown>) => parseSpec({ data: DEMO_CORPUS, models: ['ckpt'], shards: 2, ...extra }, SPEC_FILE);

test('a unit is keyed by its full options: a changed limit or mask gets new unit folders, an unchanged SPEC the same', () => {
  const out = path.join(dir, 'keyed');
  const a = buildPlan(spec({ limit: 5 }), out, runtime);
  const same = buildPlan(spec({ limit: 5 }), out, runtime);
  const b = buildPlan(spec({ limit: 6 }), out, runtime);
  const c = buildPlan(spec({ limit: 5, interventions: [{ name: 'none', maskExperts: '0:1' }] }), out, runtime);
  assert.deepEqual(
    a.units.map((u) => u.dir),
    same.units.map((u) => u.dir),
  );
  for (const other of [b, c]) for (const [i, u] of other.units.entries()) assert.notEqual(u.dir, a.units[i].dir, `unit ${i} reused across a changed SPEC`);
  assert.equal(a.experiments[0].name, b.experiments[0].name, 'the experiment keeps its name');
  assert.match(path.basename(a.units[1].dir), /^1-of-2\.[0-9a-f]{12}$/);
});

test("an experiment merged from an earlier SPEC's units is not this SPEC's: it is merged again", () => {
  const out = path.join(dir, 'remerge');
  const old = buildPlan(spec({ limit: 5 }), out, runtime);
  const now = buildPlan(spec({ limit: 6 }), out, runtime);
  const exp = old.experiments[0];
  fs.mkdirSync(exp.runDir, { recursive: true });
  fs.writeFileSync(
    path.join(exp.runDir, 'manifest.json'),
    JSON.stringify({ format: 'moe-scope.run', version: 2, model: { files: {} }, mergedFrom: exp.units.map((id) => old.units[id].dir) }),
  );
  // experimentMerged also needs a complete, sound summary: without one neither plan counts it, so check the unit list alone.
  assert.equal(experimentMerged(now.experiments[0], now), false);
  const m = mergeExperiment(now, now.experiments[0]);
  assert.equal(m.merged, false);
  assert.match(m.message, /not merged, 2 of 2 shards unfinished/);
});

test('sweep --merge refuses a sweep.json whose run folder or unit folder lies outside the sweep folder', () => {
  const out = path.join(dir, 'crafted');
  const victim = path.join(dir, 'victim-run');
  fs.mkdirSync(victim);
  fs.writeFileSync(path.join(victim, 'records.jsonl'), 'precious\n');
  const plan = buildPlan(spec({ limit: 5 }), out, runtime);
  writePlan({ ...plan, experiments: plan.experiments.map((e) => ({ ...e, runDir: victim })) });
  assert.throws(() => readPlan(out), /sweep\.json: field "experiments\[0\]\.runDir" is ".*victim-run", not a folder inside the sweep folder/);
  writePlan({ ...plan, units: plan.units.map((u, i) => (i === 1 ? { ...u, dir: '/etc' } : u)) });
  assert.throws(() => readPlan(out), /field "units\[1\]\.dir" is "\/etc"/);
  writePlan({ ...plan, experiments: plan.experiments.map((e) => ({ ...e, runDir: path.join(out, '..', 'victim-run') })) });
  assert.throws(() => readPlan(out), /not a folder inside the sweep folder/);
  // A link inside the sweep folder leading out is refused when the merge writes.
  writePlan(plan);
  const exp = plan.experiments[0];
  fs.mkdirSync(path.dirname(exp.runDir), { recursive: true });
  fs.symlinkSync(victim, exp.runDir);
  for (const id of exp.units) {
    fs.mkdirSync(plan.units[id].dir, { recursive: true });
  }
  const read = readPlan(out);
  mergeExperiment(read, read.experiments[0]);
  // The check mergeExperiment makes before it removes or writes anything in the run folder:
  assert.throws(() => assertWritableInside(out, path.join(read.experiments[0].runDir, 'records.jsonl')), /outside/);
  assert.equal(fs.readFileSync(path.join(victim, 'records.jsonl'), 'utf8'), 'precious\n');
});

test('Slurm: #SBATCH --output is quoted, and a line break in a path is refused before any script is written', () => {
  const plan = buildPlan(spec({ limit: 5 }), path.join(dir, 'sweep with space'), runtime);
  const s = writeSlurmScripts(plan);
  assert.match(fs.readFileSync(s.unitsScript, 'utf8'), /^#SBATCH --output=".*sweep with space\/slurm\/logs\/unit-%a\.log"$/m);
  assert.match(fs.readFileSync(s.mergeScript, 'utf8'), /^#SBATCH --output=".*merge\.log"$/m);
  const evil = path.join(dir, 'x\ntouch /tmp/moe-scope-pwned');
  const bad = buildPlan(spec({ limit: 5 }), evil, runtime);
  assert.throws(() => writeSlurmScripts(bad), /line break cannot be written into an sbatch script/);
  assert.equal(fs.existsSync(path.join(evil, 'slurm', 'units.sbatch')), false);
});
