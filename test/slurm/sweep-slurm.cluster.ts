/**
 * The Slurm backend under a real single-node Slurm: `sweep --backend slurm` prints the submit commands,
 * `--submit` submits the unit array and the merge job (afterok on the array), and the merged experiments
 * equal the local backend's. Run through scripts/test-slurm.sh, which starts munged, slurmctld and slurmd in
 * private namespaces and sets SLURM_CONF; outside it this test fails.
 *
 * Named *.cluster.ts rather than *.test.ts so that the unit-test run (every *.test.js under dist-test) leaves it out:
 * it needs the Slurm its script starts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunSummary } from '../../src/shared/protocol';
import { makeModel, tempDir, REPO_ROOT, DEMO_CORPUS } from '../support/models';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
type Rec = { batch: number; seconds: number; tokens: unknown; questions: { id: string }[] };
const recordsOf = (dir: string): Rec[] =>
  fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
const summaryOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as RunSummary;

test('a sweep submitted to Slurm (unit array + dependent merge job) equals the local backend', async (t) => {
  if (process.env.MOE_SCOPE_SLURM_NS !== '1' || !process.env.SLURM_CONF)
    throw new Error('this test needs the Slurm that scripts/test-slurm.sh starts; run it through that script');
  const root = tempDir('sweep-slurm');
  const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
  const spec = path.join(root, 'spec.json');
  fs.writeFileSync(
    spec,
    JSON.stringify({
      data: DEMO_CORPUS,
      limit: 2,
      batchSize: 2,
      shards: 2,
      provider: 'cpu',
      cache: path.join(root, 'cache'),
      models: [{ name: 'demo', path: model }],
      shots: [0, 2],
      resources: { cpus: 1, time: '00:10:00' },
    }),
  );

  const local = path.join(root, 'local');
  const l = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', local], { encoding: 'utf8' });
  assert.equal(l.status, 0, l.stderr);

  const out = path.join(root, 'slurm');
  // Without --submit: the scripts and the commands that would submit them.
  const dry = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', out, '--backend', 'slurm'], { encoding: 'utf8' });
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /^jobid=\$\(sbatch --parsable .*units\.sbatch\)\nsbatch --dependency=afterok:\$\{jobid%%;\*\} .*merge\.sbatch\n$/);
  const units = fs.readFileSync(path.join(out, 'slurm', 'units.sbatch'), 'utf8');
  assert.match(units, /#SBATCH --array=0-3\n/);
  assert.match(units, /#SBATCH --cpus-per-task=1\n/);
  assert.match(units, /#SBATCH --time=00:10:00\n/);
  assert.equal(fs.existsSync(path.join(out, 'demo.onnxruntime.0shot.answer.none', 'run')), false, 'nothing ran');

  const sub = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', out, '--backend', 'slurm', '--submit'], { encoding: 'utf8' });
  assert.equal(sub.status, 0, sub.stderr);
  const [, unitsJob, mergeJob] = /units job (\d+)\nmerge job (\d+)/.exec(sub.stdout) ?? [];
  assert.ok(unitsJob && mergeJob, sub.stdout);
  t.diagnostic(`units job ${unitsJob}, merge job ${mergeJob}`);
  // Wait until Slurm has no job left of ours.
  const deadline = Date.now() + 300_000;
  for (;;) {
    const q = spawnSync('squeue', ['-h', '-o', '%i %T'], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    if (!q.stdout.trim()) break;
    if (Date.now() > deadline) assert.fail(`jobs still queued after 5 minutes:\n${q.stdout}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const mergeLog = fs.readFileSync(path.join(out, 'slurm', 'logs', 'merge.log'), 'utf8');
  t.diagnostic(mergeLog.trim());
  const plan = JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8')) as { experiments: { name: string }[]; units: unknown[] };
  assert.equal(plan.units.length, 4);
  for (let i = 0; i < plan.units.length; i++) assert.match(fs.readFileSync(path.join(out, 'slurm', 'logs', `unit-${i}.log`), 'utf8'), /done: \d+ questions/);
  for (const { name } of plan.experiments) {
    const a = path.join(local, name, 'run');
    const b = path.join(out, name, 'run');
    assert.ok(fs.existsSync(path.join(b, 'summary.json')), `${name} merged by the merge job:\n${mergeLog}`);
    const strip = (r: Rec) => ({ ...r, seconds: 0 });
    assert.deepEqual(recordsOf(b).map(strip), recordsOf(a).map(strip), `${name}: same records`);
    assert.deepEqual({ ...summaryOf(b), elapsedSeconds: 0 }, { ...summaryOf(a), elapsedSeconds: 0 }, `${name}: same summary`);
  }
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'sweep-summary.json'), 'utf8')).experiments as { status: string }[];
  assert.deepEqual(
    rows.map((r) => r.status),
    ['merged', 'merged'],
  );
});
