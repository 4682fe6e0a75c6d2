/**
 * --precision on every command that loads a model (issue 23): sweep (flag and SPEC field "precision"),
 * experiment (its baseline's precision; another one refused), doctor and analyze-weights; a bad value
 * is a usage error naming the choices. No engine runs here: doctor's ONNX Runtime path is in
 * test/integration/precision-commands.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runCommand } from '../../src/cli/commands';
import { withPrecision } from '../../src/cli/sweepCommand';
import { parseSpec, SpecError } from '../../src/sweep/spec';
import { buildPlan } from '../../src/sweep/plan';
import { experimentPrecision, prepareExperiment } from '../../src/eval/experiment';
import { RunFolderError, type RunManifest } from '../../src/eval/runFolder';
import { UsageError } from '../../src/cli/command';
import { DEMO_CORPUS, tempDir } from '../support/models';
import { soundSummary } from '../support/summaries';

const dir = tempDir('precision-flags');
fs.mkdirSync(path.join(dir, 'ckpt'));
const SPEC_FILE = path.join(dir, 'spec.json');
const runtime = { node: '/usr/bin/node', cli: '/opt/moe/dist/cli.js' };
const spec = (extra: Record<string, unknown>) => parseSpec({ data: DEMO_CORPUS, models: ['ckpt'], shards: 2, ...extra }, SPEC_FILE);

async function run(argv: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommand(argv[0], argv.slice(1), { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const valueAfter = (args: string[], flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);

test('sweep SPEC "precision": passed to every unit as eval --precision; auto (the default) adds nothing, so earlier units keep their keys', () => {
  const out = path.join(dir, 'sweep');
  const plain = buildPlan(spec({}), out, runtime);
  const auto = buildPlan(spec({ precision: 'auto' }), out, runtime);
  const int8 = buildPlan(spec({ precision: 'int8' }), out, runtime);
  assert.equal(spec({}).precision, 'auto');
  assert.deepEqual(
    auto.units.map((u) => u.dir),
    plain.units.map((u) => u.dir),
  );
  for (const u of plain.units) assert.ok(!u.evalArgs.includes('--precision'), u.evalArgs.join(' '));
  for (const [i, u] of int8.units.entries()) {
    assert.equal(valueAfter(u.evalArgs, '--precision'), 'int8', u.evalArgs.join(' '));
    assert.notEqual(u.dir, plain.units[i].dir, 'an int8 unit is not the auto unit');
  }
});

test('sweep SPEC "precision": a value that is not a precision is refused naming the file, the field and the choices; evalArgs may not set it', () => {
  assert.throws(
    () => spec({ precision: 'int3' }),
    (e: Error) =>
      e instanceof SpecError && e.message.includes(SPEC_FILE) && /"precision"/.test(e.message) && /"fp32", "fp16", "bf16", "int8", "int4"/.test(e.message),
  );
  assert.throws(() => spec({ precision: 8 }), /precision.*got 8/);
  assert.throws(
    () => spec({ interventions: [{ name: 'x', evalArgs: ['--precision', 'int4'] }] }),
    /evalArgs.*must not set --precision, which the sweep sets itself/,
  );
});

test('sweep --precision: fills an auto SPEC, agrees with the same value, refuses a SPEC that names another; bad values and --merge are usage errors', async () => {
  assert.equal(withPrecision(spec({}), 'int4').precision, 'int4');
  assert.equal(withPrecision(spec({ precision: 'int8' }), 'int8').precision, 'int8');
  assert.equal(withPrecision(spec({ precision: 'int8' }), undefined).precision, 'int8');
  assert.throws(
    () => withPrecision(spec({ precision: 'int8' }), 'fp32'),
    (e: Error) => e instanceof UsageError && /--precision fp32 contradicts .*spec\.json's field "precision" \(int8\)/.test(e.message),
  );
  const bad = await run(['sweep', SPEC_FILE, '--out', path.join(dir, 'o'), '--precision', 'int3']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^moe-scope sweep: --precision must be auto, fp32, fp16, bf16, int8, int4, not "int3"/);
  const merge = await run(['sweep', '--merge', '--out', path.join(dir, 'o'), '--precision', 'int8']);
  assert.equal(merge.code, 2);
  assert.match(merge.err, /--precision applies to running a SPEC, not to --merge/);
  assert.match((await run(['sweep', '--help'])).out, /--precision auto\|fp32\|fp16\|bf16\|int8\|int4/);
});

test('doctor and analyze-weights take --precision: a bad value is a usage error before anything loads', async () => {
  for (const command of ['doctor', 'analyze-weights']) {
    const r = await run([command, '--model', path.join(dir, 'ckpt'), '--precision', 'int3']);
    assert.equal(r.code, 2, `${command}: ${r.err}`);
    assert.match(r.err, new RegExp(`^moe-scope ${command}: --precision must be auto, fp32, fp16, bf16, int8, int4, not "int3"`));
    assert.match((await run([command, '--help'])).out, /--precision /);
  }
});

let runs = 0;
/** A complete (tiny) baseline run folder whose manifest records `loaded`. */
function baselineRun(loaded: Record<string, unknown> | undefined): string {
  const d = path.join(dir, `run-${runs++}`);
  fs.mkdirSync(d);
  fs.writeFileSync(path.join(d, 'summary.json'), JSON.stringify(soundSummary(2)));
  fs.writeFileSync(path.join(d, 'records.jsonl'), '');
  fs.writeFileSync(
    path.join(d, 'manifest.json'),
    JSON.stringify({
      format: 'moe-scope.run',
      version: 2,
      model: { path: '/m', files: {} },
      dataset: { path: '/d', split: 'test' },
      shots: 0,
      tokenScope: 'answer',
      totalQuestions: 2,
      ...(loaded ? { loaded } : {}),
    }),
  );
  return d;
}

test("an experiment runs at its baseline's precision: auto or nothing takes it, another one is refused naming the manifest field", () => {
  const int8 = baselineRun({ dtype: 'float32', precision: 'int8', precisionWhy: 'requested' });
  const baseline = { dir: int8, manifest: JSON.parse(fs.readFileSync(path.join(int8, 'manifest.json'), 'utf8')) as RunManifest };
  assert.equal(experimentPrecision(undefined, baseline), 'int8');
  assert.equal(experimentPrecision('auto', baseline), 'int8');
  assert.equal(experimentPrecision('int8', baseline), 'int8');
  assert.throws(
    () => experimentPrecision('int4', baseline),
    (e: Error) =>
      e instanceof RunFolderError &&
      e.message.includes(path.join(int8, 'manifest.json')) &&
      /field "loaded\.precision"/.test(e.message) &&
      /ran at precision int8 and precision int4 was asked for/.test(e.message),
  );
  const old = baselineRun(undefined);
  const oldBaseline = { dir: old, manifest: JSON.parse(fs.readFileSync(path.join(old, 'manifest.json'), 'utf8')) as RunManifest };
  assert.equal(experimentPrecision(undefined, oldBaseline), 'auto', 'a baseline from before precisions were recorded');
  assert.equal(experimentPrecision('int4', oldBaseline), 'int4');
  const exp = prepareExperiment(int8, { kind: 'prune', experts: [[0, 1]] }, path.join(dir, 'exp'), {
    load: { executionProvider: 'cpu' },
    batchSize: 1,
  });
  assert.equal(exp.options.load.precision, 'int8', 'what the engine is asked to load');
});

test('experiment --precision on the command line: the dry run shows the precision it would load; a bad value is a usage error', async () => {
  const base = baselineRun({ dtype: 'float32', precision: 'int4' });
  const dry = await run(['experiment', '--baseline', base, '--prune', '0:1', '--out', path.join(dir, 'x1'), '--dry-run']);
  assert.equal(dry.code, 0, dry.err);
  assert.equal((JSON.parse(dry.out) as { evaluation: { load: { precision: string } } }).evaluation.load.precision, 'int4');
  await assert.rejects(
    run(['experiment', '--baseline', base, '--prune', '0:1', '--out', path.join(dir, 'x2'), '--dry-run', '--precision', 'fp32']),
    /ran at precision int4 and precision fp32 was asked for/,
  );
  const bad = await run(['experiment', '--baseline', base, '--prune', '0:1', '--out', path.join(dir, 'x3'), '--precision', 'int3']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--precision must be auto, fp32, fp16, bf16, int8, int4, not "int3"/);
});
