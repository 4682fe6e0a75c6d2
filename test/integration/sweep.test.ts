/**
 * Sweeps: SPEC validation (file and field named), the plan of experiments x shards and their eval command
 * lines, the Slurm scripts, and the local backend end to end (merge, re-run skips finished units, resumes
 * an unfinished one). Needs `node esbuild.mjs` first (the local backend runs dist/cli.js).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseSpec, readSpec, SpecError } from '../../src/sweep/spec';
import { buildPlan } from '../../src/sweep/plan';
import { shellQuote, writeSlurmScripts } from '../../src/sweep/slurm';
import { SweepProgress } from '../../src/sweep/progress';
import type { RunSummary } from '../../src/shared/protocol';
import { makeModel, tempDir, REPO_ROOT, DEMO_CORPUS } from '../support/models';
import { testPython } from '../support/python';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
const specDir = tempDir('spec');
const modelDir = path.join(specDir, 'ckpt');
fs.mkdirSync(modelDir);
const biasFile = path.join(specDir, 'bias.json');
fs.writeFileSync(biasFile, '{}');
const SPEC_FILE = path.join(specDir, 'sweep.json');
const base = { data: DEMO_CORPUS, models: ['ckpt'] };

function specError(json: unknown): string {
  try {
    parseSpec(json, SPEC_FILE);
  } catch (e) {
    assert.ok(e instanceof SpecError, String(e));
    return e.message;
  }
  assert.fail('accepted a bad SPEC');
}

test('SPEC validation names the file and the field', () => {
  const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const at = (field: string) => new RegExp(`^${esc(SPEC_FILE)}: field "${esc(field)}" `);
  assert.match(specError([]), at('(top level)'));
  assert.match(specError({ ...base, shot: [1] }), at('shot'));
  assert.match(specError({ models: ['ckpt'] }), at('data'));
  assert.match(specError({ ...base, data: 'nowhere' }), /field "data" names .*nowhere, which does not exist/);
  assert.match(specError({ ...base, models: [] }), /field "models" must be a non-empty array/);
  assert.match(specError({ ...base, models: [{ path: 'ckpt', name: 'a b' }] }), /field "models\[0\]\.name" must be 1-80 letters/);
  assert.match(specError({ ...base, shots: [0, 6] }), /field "shots\[1\]" must be an integer from 0 to 5, got 6/);
  assert.match(specError({ ...base, shots: [1, 1] }), /field "shots\[1\]" repeats "1"/);
  assert.match(specError({ ...base, engines: ['tensorrt'] }), /field "engines\[0\]" must be one of onnxruntime, pytorch/);
  assert.match(specError({ ...base, tokenScopes: ['prompt'] }), /field "tokenScopes\[0\]" must be "all", "question" or "answer"/);
  assert.match(specError({ ...base, interventions: [{ name: 'm', maskExperts: '3-4' }] }), /field "interventions\[0\]\.maskExperts" must be "L:E,L:E,\.\.\."/);
  assert.match(
    specError({ ...base, interventions: [{ name: 'b', routerBias: 'missing.json' }] }),
    /field "interventions\[0\]\.routerBias" names .*missing\.json, which does not exist/,
  );
  assert.match(specError({ ...base, interventions: [{ name: 'x', evalArgs: ['--shots', '1'] }] }), /field "interventions\[0\]\.evalArgs" must not set --shots/);
  assert.match(specError({ ...base, interventions: [{ name: 'x', steer: 1 }] }), /field "interventions\[0\]\.steer" is not an intervention field/);
  assert.match(specError({ ...base, resources: { time: '1:00:00\n#SBATCH --x' } }), /field "resources\.time" must be one plain token/);
  assert.match(specError({ ...base, shards: 0 }), /field "shards" must be an integer from 1/);
  const bad = path.join(specDir, 'broken.json');
  fs.writeFileSync(bad, '{"data": ');
  assert.throws(() => readSpec(bad), /broken\.json: not valid JSON/);
});

test('the plan: the cross product of the SPEC, one unit per shard, interventions passed to eval as flags', () => {
  const spec = parseSpec(
    {
      ...base,
      shards: 3,
      engines: ['onnxruntime', 'pytorch'],
      python: '/opt/venv/bin/python',
      shots: [0, 5],
      interventions: [
        { name: 'none' },
        { name: 'mask', maskExperts: '0:1, 3:7' },
        { name: 'bias', routerBias: 'bias.json' },
        { name: 'prune8', evalArgs: ['--prune-experts', '8'] },
      ],
    },
    SPEC_FILE,
  );
  const plan = buildPlan(spec, path.join(specDir, 'out'), { node: '/usr/bin/node', cli: '/opt/moe/dist/cli.js' });
  assert.equal(plan.experiments.length, 1 * 2 * 2 * 1 * 4);
  assert.equal(plan.units.length, plan.experiments.length * 3);
  assert.deepEqual(
    plan.units.map((u) => u.id),
    plan.units.map((_, i) => i),
  );
  assert.equal(new Set(plan.experiments.map((e) => e.name)).size, plan.experiments.length);
  const byName = (n: string) => plan.experiments.find((e) => e.name === n)!;
  const unitsOf = (n: string) => byName(n).units.map((id) => plan.units[id]);
  const mask = unitsOf('ckpt.onnxruntime.0shot.answer.mask');
  assert.deepEqual(
    mask.map((u) => u.evalArgs[u.evalArgs.indexOf('--shard') + 1]),
    ['0/3', '1/3', '2/3'],
  );
  assert.deepEqual(mask[0].evalArgs.slice(mask[0].evalArgs.indexOf('--mask-experts'), mask[0].evalArgs.indexOf('--mask-experts') + 2), [
    '--mask-experts',
    '0:1,3:7',
  ]);
  assert.deepEqual(mask[0].evalArgs.slice(mask[0].evalArgs.indexOf('--engine'), mask[0].evalArgs.indexOf('--engine') + 2), ['--engine', 'onnxruntime']);
  assert.ok(!mask[0].evalArgs.includes('--python'), 'no Python for an ONNX Runtime unit');
  assert.equal(mask[0].gpus, 0);
  const bias = unitsOf('ckpt.pytorch.5shot.answer.bias')[1];
  assert.deepEqual(bias.evalArgs.slice(bias.evalArgs.indexOf('--engine'), bias.evalArgs.indexOf('--engine') + 2), ['--engine', 'pytorch']);
  assert.equal(bias.evalArgs[bias.evalArgs.indexOf('--router-bias') + 1], biasFile);
  assert.equal(bias.gpus, 1, 'a PyTorch unit asks for a GPU');
  assert.equal(bias.evalArgs[bias.evalArgs.indexOf('--python') + 1], '/opt/venv/bin/python');
  const prune = unitsOf('ckpt.onnxruntime.5shot.answer.prune8')[2];
  assert.deepEqual(prune.evalArgs.slice(-2), ['--prune-experts', '8']);
  assert.equal(new Set(plan.units.map((u) => u.dir)).size, plan.units.length, 'every unit writes its own folder');
});

test('Slurm scripts: one array task per unit with its quoted command line, and a merge job', () => {
  const odd = tempDir("it's odd");
  const spec = parseSpec({ ...base, shards: 2, shots: [0, 1], resources: { cpus: 4, gpus: 1, memory: '16G', time: '02:00:00', partition: 'gpu' } }, SPEC_FILE);
  const plan = buildPlan(spec, path.join(odd, 'sweep dir'), { node: '/usr/bin/node', cli: '/opt/moe/dist/cli.js' });
  const s = writeSlurmScripts(plan);
  const units = fs.readFileSync(s.unitsScript, 'utf8');
  for (const line of [
    '#SBATCH --array=0-3',
    '#SBATCH --cpus-per-task=4',
    '#SBATCH --gres=gpu:1',
    '#SBATCH --mem=16G',
    '#SBATCH --time=02:00:00',
    '#SBATCH --partition=gpu',
  ])
    assert.ok(units.includes(line + '\n'), line);
  // The script runs: bash parses it, and the case arm of unit 3 holds exactly that unit's argv.
  assert.equal(spawnSync('bash', ['-n', s.unitsScript]).status, 0);
  const echoed = spawnSync(
    'bash',
    [
      '-c',
      `exec() { printf '%s\\n' "$@"; }; SLURM_ARRAY_TASK_ID=3; ${units
        .split('\n')
        .filter((l) => !l.startsWith('#') && !l.startsWith('set '))
        .join('\n')}`,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(echoed.status, 0, echoed.stderr);
  assert.deepEqual(echoed.stdout.trimEnd().split('\n'), ['/usr/bin/node', '/opt/moe/dist/cli.js', ...plan.units[3].evalArgs]);
  const merge = fs.readFileSync(s.mergeScript, 'utf8');
  assert.ok(merge.includes(`sweep --merge --out ${shellQuote(plan.sweepDir)}`));
  assert.equal(shellQuote("a'b c"), `'a'\\''b c'`);
});

// ---------------------------------------------------------------------------------------------------
// The local backend end to end.

const summaryOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as RunSummary;

test('local backend: merges every experiment, a re-run skips finished units and finishes an interrupted one', () => {
  const root = tempDir('sweep-local');
  const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
  const spec = path.join(root, 'spec.json');
  fs.writeFileSync(
    spec,
    JSON.stringify({
      data: DEMO_CORPUS,
      limit: 1,
      batchSize: 2,
      shards: 2,
      provider: 'cpu',
      cache: path.join(root, 'cache'),
      models: [{ name: 'demo', path: model }],
      shots: [0, 1],
    }),
  );
  const out = path.join(root, 'out');
  const sweep = () => spawnSync(process.execPath, [cli, 'sweep', spec, '--out', out], { encoding: 'utf8' });
  const first = sweep();
  assert.equal(first.status, 0, first.stderr);
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'sweep-summary.json'), 'utf8')).experiments as {
    name: string;
    status: string;
    questions: number;
    accuracyMicro: number;
    neverActivatedTotal: number;
  }[];
  assert.deepEqual(
    rows.map((r) => [r.name, r.status, r.questions]),
    [
      ['demo.onnxruntime.0shot.answer.none', 'merged', 6],
      ['demo.onnxruntime.1shot.answer.none', 'merged', 6],
    ],
  );
  const run0 = path.join(out, 'demo.onnxruntime.0shot.answer.none', 'run');
  assert.equal(rows[0].accuracyMicro, summaryOf(run0).accuracy.micro);
  assert.equal(rows[0].neverActivatedTotal, summaryOf(run0).neverActivatedTotal);

  const again = sweep();
  assert.equal(again.status, 0, again.stderr);
  assert.equal((again.stderr.match(/finished earlier, skipped/g) ?? []).length, 4);
  assert.equal((again.stderr.match(/already merged/g) ?? []).length, 2);

  // An interrupted unit: its last batch lost, its summary incomplete, the experiment not merged yet.
  const shardsDir = path.join(out, 'demo.onnxruntime.1shot.answer.none', 'shards');
  const unit = path.join(
    shardsDir,
    fs.readdirSync(shardsDir).find((n) => n.startsWith('1-of-2.'))!,
  );
  const lines = fs.readFileSync(path.join(unit, 'records.jsonl'), 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(
    path.join(unit, 'records.jsonl'),
    lines
      .slice(0, -1)
      .map((l) => l + '\n')
      .join(''),
  );
  fs.writeFileSync(path.join(unit, 'summary.json'), JSON.stringify({ ...summaryOf(unit), complete: false }));
  const merged = path.join(out, 'demo.onnxruntime.1shot.answer.none', 'run');
  const before = summaryOf(merged);
  fs.rmSync(merged, { recursive: true });
  const third = sweep();
  assert.equal(third.status, 0, third.stderr);
  assert.equal((third.stderr.match(/finished earlier, skipped/g) ?? []).length, 3);
  assert.match(third.stderr, /shard 1\/2\] resuming: \d+ of 3 questions already recorded/);
  assert.deepEqual({ ...summaryOf(merged), elapsedSeconds: 0, tokens: null }, { ...before, elapsedSeconds: 0, tokens: null });
});

test('a sweep over both engines: sharded PyTorch and ONNX Runtime runs agree on every question', () => {
  const python = testPython();
  const root = tempDir('sweep-engines');
  const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
  const spec = path.join(root, 'spec.json');
  fs.writeFileSync(
    spec,
    JSON.stringify({
      data: DEMO_CORPUS,
      limit: 1,
      batchSize: 2,
      shards: 2,
      provider: 'cpu',
      cache: path.join(root, 'cache'),
      python,
      engines: ['onnxruntime', 'pytorch'],
      models: [{ name: 'demo', path: model }],
      shots: [1],
    }),
  );
  const out = path.join(root, 'out');
  const r = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  type Q = { id: string; predicted: number; logProbs: number[]; answerExperts: number[][] };
  const questions = (engine: string) =>
    new Map(
      fs
        .readFileSync(path.join(out, `demo.${engine}.1shot.answer.none`, 'run', 'records.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => (JSON.parse(l).questions as Q[]).map((q) => [q.id, q] as const)),
    );
  const ort = questions('onnxruntime');
  const pt = questions('pytorch');
  assert.equal(ort.size, 6);
  assert.deepEqual([...pt.keys()].sort(), [...ort.keys()].sort());
  for (const [id, a] of ort) {
    const b = pt.get(id)!;
    a.logProbs.forEach((x, i) => assert.ok(Math.abs(x - b.logProbs[i]) < 1e-4, `${id}: log-probability ${i}: ${x} vs ${b.logProbs[i]}`));
    assert.equal(b.predicted, a.predicted, id);
    assert.deepEqual(
      b.answerExperts.map((e) => [...e].sort()),
      a.answerExperts.map((e) => [...e].sort()),
      `${id}: answer-position experts`,
    );
  }
});

test('an intervention in the SPEC reaches every shard: masked experts never routed, the mask recorded in the merged run', () => {
  const root = tempDir('sweep-mask');
  const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
  const spec = path.join(root, 'spec.json');
  const interventions = [{ name: 'none' }, { name: 'mask-l0', maskExperts: '0:1,0:2,0:3' }];
  fs.writeFileSync(
    spec,
    JSON.stringify({
      data: DEMO_CORPUS,
      limit: 1,
      batchSize: 2,
      shards: 2,
      provider: 'cpu',
      cache: path.join(root, 'cache'),
      models: [{ name: 'demo', path: model }],
      shots: [0],
      interventions,
    }),
  );
  const out = path.join(root, 'out');
  const r = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const runDir = path.join(out, 'demo.onnxruntime.0shot.answer.mask-l0', 'run');
  const manifest = JSON.parse(fs.readFileSync(path.join(runDir, 'manifest.json'), 'utf8')) as { intervention?: { mask: [number, number][] } };
  assert.deepEqual(manifest.intervention?.mask, [
    [0, 1],
    [0, 2],
    [0, 3],
  ]);
  const layer0 = fs
    .readFileSync(path.join(runDir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => (JSON.parse(l).questions as { answerExperts: number[][] }[]).map((q) => q.answerExperts[0]));
  assert.equal(layer0.length, 6);
  for (const experts of layer0) assert.ok(!experts.some((e) => [1, 2, 3].includes(e)), `masked experts routed: ${experts}`);
  const plain = JSON.parse(fs.readFileSync(path.join(out, 'demo.onnxruntime.0shot.answer.none', 'run', 'manifest.json'), 'utf8'));
  assert.equal(plain.intervention, undefined);
});

test("per-experiment progress from the local backend's and the Ray driver's lines", () => {
  const p = new SweepProgress();
  assert.equal(p.consume('[a.onnxruntime.0shot.answer.none shard 0/2] 3/6 questions  2.0 q/s'), null);
  assert.equal(
    p.consume('[1/4 units] a.onnxruntime.0shot.answer.none shard 1/2: finished'),
    'a.onnxruntime.0shot.answer.none: 1/2 shards finished (sweep: 1/4 units)',
  );
  assert.equal(
    p.consume('ray: [2/4 units] b.onnxruntime.0shot.answer.none shard 0/2: finished on vm in 1.8 s'),
    'b.onnxruntime.0shot.answer.none: 1/2 shards finished (sweep: 2/4 units)',
  );
  assert.equal(
    p.consume('[3/4 units] a.onnxruntime.0shot.answer.none shard 0/2: finished earlier, skipped'),
    'a.onnxruntime.0shot.answer.none: 2/2 shards finished (sweep: 3/4 units)',
  );
  assert.equal(
    p.consume('a.onnxruntime.0shot.answer.none: merged 2 shards, 12 questions, accuracy 25.0%, never-activated 788'),
    'a.onnxruntime.0shot.answer.none: merged (1 experiment merged so far)',
  );
  assert.equal(p.consume('zzz: merged 2 shards'), null, 'an experiment it has not seen');
  assert.equal(p.experiments.get('b.onnxruntime.0shot.answer.none')!.merged, false);
});

test('sweep refuses a bad SPEC with the file and field, and bad flags with usage', () => {
  const root = tempDir('sweep-bad');
  const spec = path.join(root, 'spec.json');
  fs.writeFileSync(spec, JSON.stringify({ data: DEMO_CORPUS, models: [root], shots: ['five'] }));
  const r = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', path.join(root, 'out')], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /spec\.json: field "shots\[0\]" must be an integer from 0 to 5, got "five"/);
  const b = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', path.join(root, 'out'), '--backend', 'kubernetes'], { encoding: 'utf8' });
  assert.equal(b.status, 2);
  assert.match(b.stderr, /--backend must be local, ray or slurm, not "kubernetes"/);
});
