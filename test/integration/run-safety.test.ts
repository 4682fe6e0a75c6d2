/**
 * Hostile and careless input to evaluation runs (issue 12): concurrent writers, stale locks, resumes
 * without a manifest or on swapped weights, damaged record lines, bad numeric options, runs in which
 * nothing can be scored, over-long questions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquireRunLock, LOCK } from '../../src/eval/runLock';
import { modelFingerprint } from '../../src/eval/fingerprint';
import { RunFolderError, manifestMismatch, type RunManifest } from '../../src/eval/runFolder';
import { makeModel, tempDir, REPO_ROOT } from '../support/models';
import { CLI as cli, demoEvalArgs, runCli as runBuiltCli } from '../support/cli';

const model = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
const cache = tempDir('cache');
const hashCache = path.join(tempDir('hashes'), 'hashes.json');
const env = { ...process.env, XDG_CACHE_HOME: path.dirname(hashCache) };

const evalArgs = (out: string, extra: string[] = [], m = model) => demoEvalArgs({ model: m, out, cache, limit: 3, shots: 1, batchSize: 2 }, extra);
const runCli = (args: string[], input?: string) => runBuiltCli(args, { env, input });

function recordedIds(runDir: string): string[] {
  return fs
    .readFileSync(path.join(runDir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => JSON.parse(l).questions.map((q: { id: string }) => q.id));
}

/** A pid that certainly belongs to no running process: one of a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

test('the run lock refuses a second holder at once, naming the first', () => {
  const dir = tempDir('lock');
  const first = acquireRunLock(dir);
  assert.throws(
    () => acquireRunLock(dir),
    (e: Error) => e instanceof RunFolderError && e.message.includes(`process ${process.pid} on ${os.hostname()}, started `),
  );
  first.release();
  assert.equal(fs.existsSync(path.join(dir, LOCK)), false, 'released');
  const again = acquireRunLock(dir);
  assert.equal(again.tookOverFrom, null);
  again.release();
});

test('a lock left by a dead process is taken over, and one whose pid was reused by a later process too', () => {
  const dir = tempDir('lock-stale');
  const pid = deadPid();
  fs.writeFileSync(path.join(dir, LOCK), JSON.stringify({ pid, host: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z', processStart: null }));
  const lock = acquireRunLock(dir);
  assert.equal(lock.tookOverFrom?.pid, pid);
  lock.release();
  // Our own pid, but recorded with another kernel start time: a reused pid, not the holder.
  fs.writeFileSync(path.join(dir, LOCK), JSON.stringify({ pid: process.pid, host: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z', processStart: '1' }));
  const reused = acquireRunLock(dir);
  assert.equal(reused.tookOverFrom?.processStart, '1');
  reused.release();
  // A holder on another host cannot be checked, so it is never presumed dead.
  fs.writeFileSync(path.join(dir, LOCK), JSON.stringify({ pid, host: 'another-host', startedAt: '2020-01-01T00:00:00.000Z', processStart: null }));
  assert.throws(() => acquireRunLock(dir), /: in use by another evaluation \(process \d+ on another-host/);
});

test('many processes finding the same stale lock at once: exactly one takes it over', async () => {
  const dir = tempDir('lock-race');
  fs.writeFileSync(path.join(dir, LOCK), JSON.stringify({ pid: deadPid(), host: os.hostname(), startedAt: '2020-01-01T00:00:00.000Z', processStart: null }));
  const script = path.join(tempDir('race'), 'race.js');
  const runLockModule = path.join(path.dirname(script), 'race-lock.js');
  fs.writeFileSync(
    script,
    `const { acquireRunLock } = require(${JSON.stringify(runLockModule)});
     try { acquireRunLock(${JSON.stringify(dir)}); process.stdout.write('won'); setTimeout(() => {}, 1500); }
     catch (e) { process.stdout.write('refused: ' + e.message); }`,
  );
  const build = spawnSync(
    path.join(REPO_ROOT, 'node_modules', '.bin', 'esbuild'),
    [path.join(REPO_ROOT, 'src', 'eval', 'runLock.ts'), '--bundle', '--platform=node', '--format=cjs', `--outfile=${runLockModule}`, '--log-level=warning'],
    { encoding: 'utf8' },
  );
  assert.equal(build.status, 0, build.stderr);
  const results = await Promise.all(
    Array.from(
      { length: 6 },
      () =>
        new Promise<string>((resolve) => {
          const c = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          c.stdout.on('data', (d) => (out += d));
          c.on('exit', () => resolve(out));
        }),
    ),
  );
  assert.equal(results.filter((r) => r === 'won').length, 1, results.join('\n'));
  for (const r of results.filter((x) => x !== 'won'))
    assert.match(r, /refused: .*(in use by another evaluation|being locked by another process right now|could not take over a stale lock)/);
});

test('two concurrent writers on one run folder: the second is refused naming the first, the first records each question once', async () => {
  const dir = tempDir('run-two');
  const first = spawn(process.execPath, [cli, ...evalArgs(dir, ['--batch-size', '1'])], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let firstErr = '';
  first.stderr.on('data', (d) => (firstErr += d));
  const firstExit = new Promise<number | null>((res) => first.on('exit', (c) => res(c)));
  while (!fs.existsSync(path.join(dir, LOCK))) await new Promise((r) => setTimeout(r, 5));
  const second = runCli(evalArgs(dir, ['--batch-size', '1']));
  assert.equal(second.status, 75, second.stderr); // EX_TEMPFAIL: a scheduler may retry later
  assert.match(second.stderr, new RegExp(`: in use by another evaluation \\(process ${first.pid} on ${os.hostname()}, started `));
  assert.equal(await firstExit, 0, firstErr);
  const ids = recordedIds(dir);
  assert.equal(ids.length, 18, '6 subjects x 3 questions');
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(fs.existsSync(path.join(dir, LOCK)), false, 'the lock is released at the end');
});

test('records without a valid manifest are never resumed into', () => {
  const dir = tempDir('run-manifest');
  assert.equal(runCli(evalArgs(dir, ['--subjects', 'marketing'])).status, 0);
  const manifest = path.join(dir, 'manifest.json');
  const saved = fs.readFileSync(manifest, 'utf8');
  fs.rmSync(manifest);
  let r = runCli(evalArgs(dir, ['--subjects', 'marketing', '--shots', '0']));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /records\.jsonl: has records but .*manifest\.json is missing.*not resumed into\. Move .* aside/);
  fs.writeFileSync(manifest, 'null');
  r = runCli(evalArgs(dir, ['--subjects', 'marketing', '--shots', '0']));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /manifest\.json: not a run manifest \(expected an object, found null\).*not resumed into/);
  fs.writeFileSync(manifest, saved);
  r = runCli(evalArgs(dir, ['--subjects', 'marketing', '--shots', '0']));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /different shots \(1 vs 0\)/);
  assert.equal(runCli(evalArgs(dir, ['--subjects', 'marketing'])).status, 0, 'the same options still resume');
});

test('weights replaced under the same config.json: the resume is refused naming the file', () => {
  const m = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
  const dir = tempDir('run-weights');
  assert.equal(runCli(evalArgs(dir, ['--subjects', 'marketing'], m)).status, 0);
  const weights = fs.readdirSync(m).find((f) => f.endsWith('.safetensors'))!;
  const other = makeModel({ family: 'olmoe', overrides: { layers: 2 }, seed: 'swapped' });
  fs.copyFileSync(path.join(other, weights), path.join(m, weights));
  const r = runCli(evalArgs(dir, ['--subjects', 'marketing'], m));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`different model\\.files\\.${weights.replace('.', '\\.')}\\.sha256`));
});

test('model fingerprints hash each file once and again only when it changes', async () => {
  const m = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
  const cacheFile = path.join(tempDir('fp'), 'h.json');
  const a = await modelFingerprint(m, { cacheFile });
  assert.ok(a['config.json'] && a['tokenizer.json'] && Object.keys(a).some((k) => k.endsWith('.safetensors')));
  const cached = JSON.parse(fs.readFileSync(cacheFile, 'utf8'));
  // A poisoned cache entry with the right key is believed: proof that the cache is what is read.
  const real = fs.realpathSync(path.join(m, 'config.json'));
  cached[real].sha256 = 'from-cache';
  fs.writeFileSync(cacheFile, JSON.stringify(cached));
  assert.equal((await modelFingerprint(m, { cacheFile }))['config.json'].sha256, 'from-cache');
  // Rewriting the file changes its key (mtime), so it is hashed again.
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(path.join(m, 'config.json'), later, later);
  assert.equal((await modelFingerprint(m, { cacheFile }))['config.json'].sha256, a['config.json'].sha256);
});

test('a damaged line in the middle of records.jsonl is set aside with its line number and its questions are redone', () => {
  const whole = tempDir('run-whole');
  assert.equal(runCli(evalArgs(whole)).status, 0);
  const dir = tempDir('run-corrupt');
  assert.equal(runCli(evalArgs(dir)).status, 0);
  const file = path.join(dir, 'records.jsonl');
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
  const lostIds = JSON.parse(lines[2]).questions.map((q: { id: string }) => q.id);
  const unknownIds = JSON.parse(lines[6]).questions.map((q: { id: string }) => q.id);
  lines[2] = lines[2].slice(0, lines[2].length >> 1); // torn in the middle of the file
  lines[4] = JSON.stringify({ ...JSON.parse(lines[4]), questions: 'x' });
  const renamed = JSON.parse(lines[6]);
  renamed.questions[0].id = 'no_such_subject/test/0';
  lines[6] = JSON.stringify(renamed);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  const r = runCli(evalArgs(dir));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /set aside damaged record at .*records\.jsonl:3 into records\.rejects\.jsonl \(not valid JSON/);
  assert.match(r.stderr, /records\.jsonl:5 into records\.rejects\.jsonl \(field "questions" is not an array\)/);
  const rejects = fs
    .readFileSync(path.join(dir, 'records.rejects.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  assert.match(r.stderr, /records\.jsonl:7 into records\.rejects\.jsonl \(question no_such_subject\/test\/0 is not one of this run's questions\)/);
  assert.deepEqual(
    rejects.map((x) => x.line),
    [3, 5, 7],
  );
  const ids = recordedIds(dir);
  assert.equal(ids.length, 18);
  assert.equal(new Set(ids).size, 18);
  for (const id of [...lostIds, ...unknownIds.slice(1)]) assert.ok(ids.includes(id), `${id} was scored again`);
  assert.ok(!ids.includes('no_such_subject/test/0'));
  const sum = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'summary.json'), 'utf8'));
  assert.equal(sum(dir).accuracy.micro, sum(whole).accuracy.micro);
  assert.deepEqual(
    sum(dir).layers.map((l: { activationCounts: number[] }) => l.activationCounts),
    sum(whole).layers.map((l: { activationCounts: number[] }) => l.activationCounts),
  );
});

test('numeric options are validated, naming the option', () => {
  for (const [opt, value] of [
    ['batch-size', 'abc'],
    ['batch-size', '0'],
    ['limit', 'abc'],
    ['limit', '1e3'],
    ['shots', '1.5'],
  ]) {
    const r = runCli(evalArgs(tempDir('run-opt'), [`--${opt}`, value]));
    assert.equal(r.status, 2, `--${opt} ${value}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`--${opt} must be an integer from \\d+ to \\d+, not "${value.replace('.', '\\.')}"`));
  }
});

test('over-long questions are rejected one by one with a count; a run with nothing left to score exits non-zero saying why', () => {
  const data = tempDir('data-long');
  fs.mkdirSync(path.join(data, 'test'));
  const huge = 'word '.repeat(2_000_000); // 10 MB: more than any context, rejected without tokenizing it
  fs.writeFileSync(path.join(data, 'test', 'anatomy_test.csv'), `${huge},a,b,c,d,A\n${huge},a,b,c,d,B\n`);
  const out = tempDir('run-long');
  const r = runCli(['eval', '--model', model, '--data', data, '--out', out, '--shots', '0', '--provider', 'cpu', '--cache', cache, '--quiet']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /skipped anatomy\/test\/0: 10000004 characters \(.*anatomy_test\.csv:1\) cannot fit the context of \d+ tokens/);
  assert.match(r.stderr, /skipped 2 of 2 questions in all/);
  assert.match(r.stderr, /nothing to score: all 2 selected questions were skipped/);
  assert.doesNotMatch(r.stderr, /done|accuracy/);
});

test('trace: a long --text is an error about the context, not a crash; --file and --file - give the same trace as --text', () => {
  const long = 'The cell membrane regulates what enters. '.repeat(1000); // ~41 KB: crashed ONNX Runtime before
  const r = runCli(['trace', '--model', model, '--text', long, '--provider', 'cpu', '--cache', cache]);
  assert.equal(r.status, 1, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  assert.match(r.stderr, /tokens exceed the model's context of \d+ positions/);
  const text = 'Which organelle makes proteins?\nA. ribosome\nB. nucleus\nC. vacuole\nD. wall\nAnswer:';
  const file = path.join(tempDir('text'), 'q.txt');
  fs.writeFileSync(file, text);
  const viaText = runCli(['trace', '--model', model, '--text', text, '--json', '--provider', 'cpu', '--cache', cache]);
  const viaFile = runCli(['trace', '--model', model, '--file', file, '--json', '--provider', 'cpu', '--cache', cache]);
  const viaStdin = runCli(['trace', '--model', model, '--file', '-', '--json', '--provider', 'cpu', '--cache', cache], text);
  for (const x of [viaText, viaFile, viaStdin]) assert.equal(x.status, 0, x.stderr);
  const pick = (s: string) => {
    const j = JSON.parse(s);
    return { ids: j.ids, topExperts: j.topExperts, answerLogProbs: j.answerLogProbs };
  };
  assert.deepEqual(pick(viaFile.stdout), pick(viaText.stdout));
  assert.deepEqual(pick(viaStdin.stdout), pick(viaText.stdout));
  const missing = runCli(['trace', '--model', model, '--file', path.join(file, 'nope'), '--provider', 'cpu', '--cache', cache]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--file .*nope: /);
});

test('the fingerprint comparison is generic: any field a later feature adds is compared; paths alone are not', () => {
  const m = {
    format: 'moe-scope.run',
    version: 2,
    createdAt: 'then',
    model: {
      path: '/a/model',
      family: 'olmoe',
      numLayers: 2,
      numExperts: 64,
      topK: 8,
      configSha256: 'c',
      demo: true,
      files: { 'model.safetensors': { size: 1, sha256: 'x' } },
    },
    loaded: { dtype: 'float32', executionProvider: 'cpu', device: 'cpu' },
    dataset: { path: '/a/data', split: 'test', fingerprint: 'f' },
    shots: 5,
    tokenScope: 'answer',
    subjects: null,
    limitPerSubject: 0,
    totalQuestions: 10,
  } as RunManifest;
  const moved = { ...m, createdAt: 'now', model: { ...m.model, path: '/b/model' }, dataset: { ...m.dataset, path: '/b/data' } };
  assert.deepEqual(manifestMismatch(m, moved), [], 'same content elsewhere resumes');
  const withIntervention = { ...m, interventions: [{ layer: 3, expert: 7, mode: 'ablate' }] } as unknown as RunManifest;
  assert.deepEqual(manifestMismatch(m, withIntervention), ['interventions (absent vs [{"layer":3,"expert":7,"mode":"ablate"}])']);
  const otherEngine = { ...m, loaded: { ...m.loaded, engine: 'pytorch', dtype: 'bfloat16' } } as RunManifest;
  assert.deepEqual(manifestMismatch(m, otherEngine), ['loaded.dtype ("float32" vs "bfloat16")', 'loaded.engine (absent vs "pytorch")']);
  const otherGpu = {
    ...m,
    loaded: { ...m.loaded, device: 'cuda:1' },
    model: { ...m.model, engine: { kind: 'pytorch', device: 'cuda:1', dtype: 'float32' } },
  } as RunManifest;
  const gpu0 = { ...m, model: { ...m.model, engine: { kind: 'pytorch', device: 'cuda:0', dtype: 'float32' } } } as RunManifest;
  assert.deepEqual(manifestMismatch(gpu0, otherGpu), [], 'another device of the same kind resumes');
});
