/**
 * The Ray backend on a real two-node Ray cluster (a head and a second node, both started with `ray start` on
 * this machine, CPU only): a sweep of three experiments on a demo model, one Ray worker killed while it runs
 * a unit. The sweep must still finish, with every question recorded exactly once and the same results as the
 * local backend.
 *
 * Run it through scripts/test-ray.sh, which builds, checks that Ray is installed and runs this file inside
 * fresh network and PID namespaces: Ray sees only the loopback interface (it never binds another), and every
 * process it starts dies with the namespace, even if this test is killed. Outside that script it fails.
 *
 * Named *.cluster.ts rather than *.test.ts so that the unit-test run (every *.test.js under dist-test) leaves it out:
 * it needs the Ray its script starts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { RunSummary } from '../../src/shared/protocol';
import { makeModel, tempDir, REPO_ROOT, DEMO_CORPUS } from '../support/models';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
const python = process.env.MOE_SCOPE_PYTHON || path.join(REPO_ROOT, '.venv', 'bin', 'python');
const rayBin = path.join(path.dirname(python), 'ray');

function requireNamespace(): void {
  if (process.env.MOE_SCOPE_RAY_NS !== '1') {
    throw new Error('this test starts and stops a Ray cluster; run it with scripts/test-ray.sh (isolated network and PID namespaces)');
  }
  if (!fs.existsSync(rayBin)) throw new Error(`${rayBin} not found: install Ray with ${path.dirname(python)}/pip install -r python/requirements-ray.txt`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

let rayStarted = false;
const rayTmp = tempDir('ray');
function ray(args: string[]): string {
  const r = spawnSync(rayBin, args, { encoding: 'utf8', env: { ...process.env, RAY_USAGE_STATS_ENABLED: '0' } });
  if (r.status !== 0) throw new Error(`ray ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

after(() => {
  if (!rayStarted) return;
  // Inside the test's own PID namespace `ray stop` can only reach this test's Ray processes.
  spawnSync(rayBin, ['stop', '--force'], { encoding: 'utf8' });
  const left = execFileSync('ps', ['-eo', 'pid,comm'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /raylet|gcs_server|ray::/.test(l));
  assert.deepEqual(left, [], 'every Ray process stopped');
});

type Rec = { batch: number; seconds: number; tokens: unknown; questions: { id: string }[] };
const recordsOf = (dir: string): Rec[] =>
  fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Rec);
const summaryOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as RunSummary;
const lines = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

test('a Ray sweep of three experiments survives a killed worker: every question once, results equal to the local backend', async (t) => {
  requireNamespace();
  const root = tempDir('sweep-ray');
  const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
  const spec = path.join(root, 'spec.json');
  const questionsPerSubject = 3;
  fs.writeFileSync(
    spec,
    JSON.stringify(
      {
        data: DEMO_CORPUS,
        limit: questionsPerSubject,
        batchSize: 1,
        shards: 2,
        provider: 'cpu',
        cache: path.join(root, 'cache'),
        models: [{ name: 'demo', path: model }],
        shots: [0, 1, 2],
      },
      null,
      2,
    ),
  );

  // The reference: the same sweep with the local backend.
  const local = path.join(root, 'local');
  const l = spawnSync(process.execPath, [cli, 'sweep', spec, '--out', local, '--backend', 'local'], { encoding: 'utf8' });
  assert.equal(l.status, 0, l.stderr);
  const plan = JSON.parse(fs.readFileSync(path.join(local, 'sweep.json'), 'utf8')) as { experiments: { name: string }[] };
  assert.equal(plan.experiments.length, 3);

  // A two-node cluster on this machine.
  const port = await freePort();
  rayStarted = true;
  ray([
    'start',
    '--head',
    `--port=${port}`,
    '--node-ip-address=127.0.0.1',
    '--num-cpus=1',
    '--object-store-memory=100000000',
    '--include-dashboard=false',
    `--temp-dir=${rayTmp}`,
    '--disable-usage-stats',
  ]);
  ray(['start', `--address=127.0.0.1:${port}`, '--node-ip-address=127.0.0.1', '--num-cpus=1', '--object-store-memory=100000000', '--disable-usage-stats']);
  // The autoscaler's view lags the second node's registration by a few seconds.
  const twoNodes = /Active:\s*\n\s*1 node_\w+\s*\n\s*1 node_\w+/;
  let status = '';
  for (let i = 0; i < 60 && !twoNodes.test(status); i++) {
    if (i) await new Promise((r) => setTimeout(r, 1000));
    status = ray(['status', `--address=127.0.0.1:${port}`]);
  }
  assert.match(status, twoNodes, `two nodes alive:\n${status}`);

  const out = path.join(root, 'ray');
  const child = spawn(process.execPath, [cli, 'sweep', spec, '--out', out, '--backend', 'ray', '--ray-address', `127.0.0.1:${port}`, '--python', python], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));

  // Kill the Ray worker running some unit once that unit has recorded a batch but not finished.
  let killed: { unitDir: string; workerPid: number; recordedAtKill: number } | null = null;
  const poll = setInterval(() => {
    if (killed || !fs.existsSync(out)) return;
    for (const exp of fs.readdirSync(out)) {
      const shardsDir = path.join(out, exp, 'shards');
      if (!fs.existsSync(shardsDir)) continue;
      for (const shard of fs.readdirSync(shardsDir)) {
        const dir = path.join(shardsDir, shard);
        const recorded = lines(path.join(dir, 'records.jsonl'));
        if (recorded < 1 || (fs.existsSync(path.join(dir, 'summary.json')) && summaryOf(dir).complete)) continue;
        let evalPid: number;
        try {
          evalPid = JSON.parse(fs.readFileSync(path.join(dir, '.lock'), 'utf8')).pid;
        } catch {
          continue;
        }
        const stat = fs.readFileSync(`/proc/${evalPid}/stat`, 'utf8');
        const workerPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const comm = fs.readFileSync(`/proc/${workerPid}/cmdline`, 'utf8');
        if (!/ray::|default_worker/.test(comm)) continue;
        process.kill(workerPid, 'SIGKILL');
        killed = { unitDir: dir, workerPid, recordedAtKill: recorded };
        return;
      }
    }
  }, 10);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearInterval(poll);
  assert.equal(code, 0, log.slice(-4000));
  assert.ok(killed, `no unit could be caught mid-way to kill its worker:\n${log.slice(-3000)}`);
  const k = killed as { unitDir: string; workerPid: number; recordedAtKill: number };
  t.diagnostic(`killed Ray worker ${k.workerPid} after ${k.recordedAtKill} recorded batches of ${path.relative(out, k.unitDir)}`);
  for (const line of log.split('\n').filter((x) => /resuming:|ray: \[|merged|worker|died/i.test(x) && !/questions {2}/.test(x)))
    t.diagnostic(line.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '').slice(0, 200));
  // The killed unit's own share of the questions (batch size 1: one question per batch).
  const perShard = (JSON.parse(fs.readFileSync(path.join(k.unitDir, 'manifest.json'), 'utf8')).shard.questionIds as string[]).length;
  assert.ok(k.recordedAtKill < perShard, `killed after ${k.recordedAtKill} of ${perShard} batches`);
  // The retry resumed the killed unit's folder rather than starting over.
  assert.match(log, new RegExp(`resuming: \\d+ of ${perShard} questions already recorded`));
  const killedIds = recordsOf(k.unitDir).flatMap((r) => r.questions.map((q) => q.id));
  assert.equal(killedIds.length, perShard, 'the killed unit finished');
  assert.equal(new Set(killedIds).size, killedIds.length, 'no question of the killed unit recorded twice');

  for (const { name } of plan.experiments) {
    const a = path.join(local, name, 'run');
    const b = path.join(out, name, 'run');
    const ids = recordsOf(b).flatMap((r) => r.questions.map((q) => q.id));
    assert.equal(ids.length, questionsPerSubject * 6, `${name}: every question`);
    assert.equal(new Set(ids).size, ids.length, `${name}: each once`);
    // Wall times differ, and a resumed unit computes its few-shot prefix again (tokens), nothing else.
    const strip = (r: Rec) => ({ ...r, seconds: 0, tokens: null });
    assert.deepEqual(recordsOf(b).map(strip), recordsOf(a).map(strip), `${name}: same records as the local backend`);
    assert.deepEqual(
      { ...summaryOf(b), elapsedSeconds: 0, tokens: null },
      { ...summaryOf(a), elapsedSeconds: 0, tokens: null },
      `${name}: same summary as the local backend`,
    );
  }
  const rows = JSON.parse(fs.readFileSync(path.join(out, 'sweep-summary.json'), 'utf8')).experiments as { status: string }[];
  assert.deepEqual(
    rows.map((r) => r.status),
    ['merged', 'merged', 'merged'],
  );
});
