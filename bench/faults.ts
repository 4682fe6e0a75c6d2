/**
 * Fault injection against evaluation run folders, on a generated demo model, through the real CLI:
 *   - SIGKILL at random moments (during load, planning, scoring, appending), then resume, N times;
 *   - two writers started at once on one folder;
 *   - manifest.json deleted, and the weights swapped under the same config.json, before a resume;
 *   - a torn last record line, and a corrupt line in the middle of records.jsonl;
 *   - hostile inputs (issue 21): records.jsonl as a FIFO, a link to /dev/zero, a link out of the run folder or a
 *     folder (resume, compare, merge), a FIFO --router-bias, an impossible summary, a Python that prints before
 *     the worker or never starts it, a config naming a layer the weights lack, a sweep re-run with a changed
 *     SPEC, a crafted sweep.json. Each must be refused (or re-run) in bounded time, nothing outside touched.
 * Recoverable faults must end in exactly the records and summary of an uninterrupted run; the others
 * must be refused with their reason. Prints one line on stdout:
 *   faults injected N (H hostile-input classes), runs recovered exactly R, refused correctly F, questions lost 0,
 *   duplicated 0, mixed 0, hung 0, orphans 0
 * (details on stderr; exit 1 when anything was lost, duplicated, wrongly accepted or not recovered).
 *
 *   node dist/bench/faults.js [--kills 10] [--seed 1]
 */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { makeDemoModel } from '../src/engines/onnxruntime/demo/makeDemoModel';
import { BENCH_ROOT } from './common';

const { values } = parseArgs({ options: { kills: { type: 'string', default: '10' }, seed: { type: 'string', default: '1' } } });
const KILLS = Number(values.kills);
let rng = Number(values.seed) >>> 0 || 1;
const random = () => (rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0) / 2 ** 32;

const cli = path.join(BENCH_ROOT, 'dist', 'cli.js');
const corpus = path.join(BENCH_ROOT, 'media', 'demo-data', 'mmlu');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-faults-'));
const cache = path.join(work, 'cache');
const env = { ...process.env, XDG_CACHE_HOME: path.join(work, 'xdg') };
const log = (m: string) => process.stderr.write(`${m}\n`);

function model(name: string, seed?: string): string {
  const dir = path.join(work, name);
  makeDemoModel(dir, { family: 'olmoe', corpusDir: corpus, seed, overrides: { layers: 4 } });
  return dir;
}
const args = (m: string, out: string, c = cache) => [
  'eval',
  '--model',
  m,
  '--data',
  corpus,
  '--out',
  out,
  '--limit',
  '5',
  '--shots',
  '2',
  '--batch-size',
  '1',
  '--provider',
  'cpu',
  '--cache',
  c,
  '--quiet',
];
const run = (m: string, out: string, c = cache): SpawnSyncReturns<string> => spawnSync(process.execPath, [cli, ...args(m, out, c)], { encoding: 'utf8', env });

interface Outcome {
  ids: string[];
  summary: { questions: number; accuracy: { micro: number }; layers: { activationCounts: number[] }[] };
}
function outcome(dir: string): Outcome {
  const ids = fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => (JSON.parse(l) as { questions: { id: string }[] }).questions.map((q) => q.id));
  return { ids, summary: JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) };
}

let lost = 0;
let duplicated = 0;
/** Whether `dir` holds exactly the reference run's questions and results; counts losses and duplicates. */
function sameAsReference(dir: string, ref: Outcome, label: string): boolean {
  const got = outcome(dir);
  const seen = new Set<string>();
  let dup = 0;
  for (const id of got.ids) {
    if (seen.has(id)) dup++;
    else seen.add(id);
  }
  const missing = ref.ids.filter((id) => !seen.has(id)).length;
  lost += missing;
  duplicated += dup;
  const exact =
    missing === 0 &&
    dup === 0 &&
    got.ids.length === ref.ids.length &&
    got.summary.questions === ref.summary.questions &&
    got.summary.accuracy.micro === ref.summary.accuracy.micro &&
    JSON.stringify(got.summary.layers.map((l) => l.activationCounts)) === JSON.stringify(ref.summary.layers.map((l) => l.activationCounts));
  if (!exact) log(`${label}: NOT exact (missing ${missing}, duplicated ${dup}, ${got.ids.length} vs ${ref.ids.length} records)`);
  return exact;
}

async function killAt(m: string, out: string, ms: number, c: string): Promise<boolean> {
  const child = spawn(process.execPath, [cli, ...args(m, out, c)], { env, stdio: 'ignore' });
  const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const code = await exited;
  clearTimeout(timer);
  return code === null; // killed, rather than finished first
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const demo = model('model');
  let faults = 0;
  let recovered = 0;
  let refused = 0;
  let failures = 0;

  const refDir = path.join(work, 'reference');
  const r0 = run(demo, refDir);
  if (r0.status !== 0) throw new Error(`the reference run failed: ${r0.stderr}`);
  const ref = outcome(refDir);
  const fullMs = Date.now() - t0;
  log(`reference: ${ref.ids.length} questions in ${fullMs} ms`);

  // SIGKILL at random moments, each followed (eventually) by resumes until the run completes.
  // Their own graph cache, so that early kills also interrupt graph builds (left-over build folders
  // must be removed by the next start).
  const killed = path.join(work, 'killed');
  const killCache = path.join(work, 'kill-cache');
  let kills = 0;
  while (kills < KILLS) {
    const ms = Math.round(100 + random() * Math.max(500, fullMs));
    if (await killAt(demo, killed, ms, killCache)) {
      kills++;
      faults++;
      log(`SIGKILL ${kills} after ${ms} ms`);
    } else if (fs.existsSync(path.join(killed, 'summary.json')) && outcome(killed).summary.questions >= ref.ids.length) {
      // The run finished before the kill: start over so that every kill hits a run in progress.
      fs.rmSync(killed, { recursive: true, force: true });
    }
  }
  const resumed = run(demo, killed, killCache);
  const abandoned = fs.readdirSync(killCache).filter((n) => n.includes('.tmp-'));
  if (abandoned.length) log(`left-over graph build folders: ${abandoned.join(', ')}`);
  if (resumed.status === 0 && abandoned.length === 0 && sameAsReference(killed, ref, 'after kills')) recovered += kills;
  else failures++;

  // A torn last line (a kill in the middle of a write) and a corrupt line in the middle.
  for (const kind of ['torn', 'corrupt'] as const) {
    const dir = path.join(work, kind);
    fs.cpSync(refDir, dir, { recursive: true });
    const file = path.join(dir, 'records.jsonl');
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    if (kind === 'torn') {
      const last = lines.pop()!;
      fs.writeFileSync(file, lines.map((l) => l + '\n').join('') + last.slice(0, last.length >> 1));
    } else {
      const mid = lines.length >> 1;
      lines[mid] = lines[mid].slice(0, lines[mid].length >> 1) + '\u0000garbage';
      fs.writeFileSync(file, lines.map((l) => l + '\n').join(''));
    }
    fs.rmSync(path.join(dir, 'summary.json'));
    faults++;
    const r = run(demo, dir);
    if (r.status === 0 && sameAsReference(dir, ref, kind)) recovered++;
    else {
      failures++;
      log(`${kind}: exit ${r.status}: ${r.stderr}`);
    }
  }

  // Two writers at once: exactly one is refused, naming the other; the other completes exactly.
  {
    const dir = path.join(work, 'concurrent');
    faults++;
    const start = () =>
      new Promise<{ code: number | null; err: string }>((res) => {
        const c = spawn(process.execPath, [cli, ...args(demo, dir)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d) => (err += d));
        c.on('exit', (code) => res({ code, err }));
      });
    const results = await Promise.all([start(), start()]);
    const ok = results.filter((x) => x.code === 0);
    const refusedOnes = results.filter((x) => x.code === 1 && /: in use by another evaluation \(process \d+ on /.test(x.err));
    if (ok.length === 1 && refusedOnes.length === 1 && sameAsReference(dir, ref, 'concurrent')) refused++;
    else {
      failures++;
      log(`concurrent writers: exits ${results.map((x) => x.code).join(', ')}\n${results.map((x) => x.err).join('\n')}`);
    }
  }

  // Manifest deleted: the records can no longer be attributed, so the resume must be refused.
  {
    const dir = path.join(work, 'no-manifest');
    fs.cpSync(refDir, dir, { recursive: true });
    fs.rmSync(path.join(dir, 'manifest.json'));
    faults++;
    const r = run(demo, dir);
    if (r.status === 1 && /manifest\.json is missing/.test(r.stderr)) refused++;
    else {
      failures++;
      log(`manifest deleted: exit ${r.status}: ${r.stderr}`);
    }
  }

  // Weights swapped under the same config.json: the resume must be refused.
  {
    const m = model('swapped');
    const dir = path.join(work, 'swapped-run');
    const first = run(m, dir);
    if (first.status !== 0) throw new Error(first.stderr);
    const other = model('other', 'another seed');
    for (const f of fs.readdirSync(m).filter((n) => n.endsWith('.safetensors'))) fs.copyFileSync(path.join(other, f), path.join(m, f));
    faults++;
    const r = run(m, dir);
    if (r.status === 1 && /different model\.files\..*\.sha256/.test(r.stderr)) refused++;
    else {
      failures++;
      log(`weights swapped: exit ${r.status}: ${r.stderr}`);
    }
  }

  // Hostile inputs (issue 21): each must end in a clear refusal in bounded time, nothing outside touched.
  const hostile = hostileClasses(demo, refDir);
  for (const h of hostile) {
    faults++;
    const r = h.run();
    const hung = r.error !== undefined && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
    const touched = fs.readFileSync(outsideFile, 'utf8') !== OUTSIDE_TEXT;
    const verdict = hung ? 'hung' : touched ? 'touched a file outside its folder' : h.check(r);
    if (hung) hungCount++;
    if (touched) {
      mixed++;
      fs.writeFileSync(outsideFile, OUTSIDE_TEXT);
    }
    if (verdict === 'refused') refused++;
    else if (verdict === 'recovered') recovered++;
    else {
      if (verdict === 'mixed') mixed++;
      failures++;
      log(`${h.name}: ${verdict}: exit ${r.status} ${r.signal ?? ''}: ${String(r.stderr ?? '').slice(-600)}`);
    }
    log(`${h.name}: ${verdict}`);
  }
  const orphans = orphanedSleeps();
  if (orphans.length) {
    failures++;
    log(`orphaned worker processes: ${orphans.join(', ')}`);
    for (const pid of orphans) process.kill(pid, 'SIGKILL');
  }

  log(`${((Date.now() - t0) / 1000).toFixed(0)} s in ${work}`);
  process.stdout.write(
    `faults injected ${faults} (${hostile.length} hostile-input classes), runs recovered exactly ${recovered}, refused correctly ${refused}, questions lost ${lost}, duplicated ${duplicated}, mixed ${mixed}, hung ${hungCount}, orphans ${orphans.length}\n`,
  );
  if (failures || lost || duplicated || mixed || hungCount) process.exitCode = 1;
  else fs.rmSync(work, { recursive: true, force: true });
}

// ---- hostile-input classes --------------------------------------------------------------------------

let mixed = 0;
let hungCount = 0;
const outsideDir = path.join(work, 'outside');
fs.mkdirSync(outsideDir, { recursive: true });
const outsideFile = path.join(outsideDir, 'precious.jsonl');
const OUTSIDE_TEXT = '{"precious": "nothing may truncate or append to this"}\n{"torn';
fs.writeFileSync(outsideFile, OUTSIDE_TEXT);
/** A marker no other process on the machine has: `sleep 3131` run by the fake Pythons below. */
const SLEEP_MARK = '3131';
const HOSTILE_TIMEOUT_MS = 60_000;

function cliRun(argv: string[], extraEnv: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [cli, ...argv], { encoding: 'utf8', env: { ...env, ...extraEnv }, timeout: HOSTILE_TIMEOUT_MS, maxBuffer: 1 << 26 });
}

function orphanedSleeps(): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (fs.readFileSync(`/proc/${e}/cmdline`, 'utf8') === `sleep\0${SLEEP_MARK}\0`) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

interface Hostile {
  name: string;
  run: () => SpawnSyncReturns<string>;
  /** 'refused' or 'recovered' when it ended as it must; otherwise what went wrong ('mixed' when wrong results were reported as success). */
  check: (r: SpawnSyncReturns<string>) => string;
}

const refusedWith = (re: RegExp) => (r: SpawnSyncReturns<string>) =>
  r.status !== 0 && re.test(r.stderr) ? 'refused' : r.status === 0 ? 'mixed' : `wrong refusal (wanted ${re})`;

function hostileClasses(demo: string, refDir: string): Hostile[] {
  const copyRun = (name: string) => {
    const dir = path.join(work, name);
    fs.cpSync(refDir, dir, { recursive: true });
    fs.rmSync(path.join(dir, 'summary.json'));
    return dir;
  };
  const withRecords = (name: string, make: (file: string) => void) => {
    const dir = copyRun(name);
    fs.rmSync(path.join(dir, 'records.jsonl'));
    make(path.join(dir, 'records.jsonl'));
    return dir;
  };
  const fifo = (file: string) => spawnSync('mkfifo', [file]);
  const fakePython = (name: string, body: string) => {
    const file = path.join(work, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  };
  const list: Hostile[] = [];
  for (const [kind, make] of [
    ['FIFO', fifo],
    ['link to /dev/zero', (f: string) => fs.symlinkSync('/dev/zero', f)],
    ['link out of the run folder', (f: string) => fs.symlinkSync(outsideFile, f)],
    ['folder', (f: string) => fs.mkdirSync(f)],
  ] as const) {
    const tag = kind.replace(/[^a-z]+/gi, '-');
    list.push({
      name: `eval resume, records.jsonl is a ${kind}`,
      run: () => run(demo, withRecords(`resume-${tag}`, make), cache),
      check: refusedWith(/records\.jsonl: (not a regular file|a symbolic link)/),
    });
    list.push({
      name: `compare, records.jsonl is a ${kind}`,
      run: () => {
        const dir = withRecords(`compare-${tag}`, make);
        fs.copyFileSync(path.join(refDir, 'summary.json'), path.join(dir, 'summary.json'));
        return cliRun(['compare', refDir, dir]);
      },
      check: refusedWith(/records\.jsonl: (not a regular file|a symbolic link|.*outside)/),
    });
  }
  // Shards for merge: two halves of the reference, one with a FIFO for records.
  list.push({
    name: 'merge, a shard whose records.jsonl is a FIFO',
    run: () => {
      const s0 = path.join(work, 'merge-s0');
      const s1 = path.join(work, 'merge-s1');
      for (const [i, d] of [s0, s1].entries()) {
        const r = spawnSync(process.execPath, [cli, ...args(demo, d), '--shard', `${i}/2`], { encoding: 'utf8', env, timeout: HOSTILE_TIMEOUT_MS });
        if (r.status !== 0) throw new Error(`shard ${i}: ${r.stderr}`);
      }
      fs.rmSync(path.join(s1, 'records.jsonl'));
      fifo(path.join(s1, 'records.jsonl'));
      return cliRun(['merge', s0, s1, '--out', path.join(work, 'merge-out')]);
    },
    check: (r) => (fs.existsSync(path.join(work, 'merge-out', 'records.jsonl')) ? 'mixed' : refusedWith(/records\.jsonl: not a regular file \(a FIFO\)/)(r)),
  });
  list.push({
    name: '--router-bias is a FIFO',
    run: () => {
      const bias = path.join(work, 'bias.fifo');
      fifo(bias);
      return cliRun([...args(demo, path.join(work, 'bias-run')), '--router-bias', bias]);
    },
    check: refusedWith(/--router-bias .*not a regular file \(a FIFO\)/),
  });
  list.push({
    name: 'summary.json edited to an impossible one (-5 questions), then compare',
    run: () => {
      const dir = path.join(work, 'impossible');
      fs.cpSync(refDir, dir, { recursive: true });
      const s = JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { questions: number };
      s.questions = -5;
      fs.writeFileSync(path.join(dir, 'summary.json'), JSON.stringify(s));
      return cliRun(['compare', refDir, dir]);
    },
    check: refusedWith(/summary\.json: field "questions" is -5/),
  });
  list.push({
    name: 'PyTorch engine: a Python wrapper that prints before the worker starts',
    run: () =>
      cliRun([
        ...args(demo, path.join(work, 'chatty')),
        '--engine',
        'pytorch',
        '--python',
        fakePython('chatty-python', `echo "activating env"\nexec sleep ${SLEEP_MARK}`),
      ]),
    check: refusedWith(/printed something else on stdout before the worker started.*activating env/),
  });
  list.push({
    name: 'PyTorch engine: a Python that never starts the worker',
    run: () =>
      cliRun([...args(demo, path.join(work, 'silent')), '--engine', 'pytorch', '--python', fakePython('silent-python', `exec sleep ${SLEEP_MARK}`)], {
        MOE_SCOPE_WORKER_START_TIMEOUT_S: '3',
      }),
    check: refusedWith(/wrote no MoE Scope worker hello within 3 s/),
  });
  const venvPython = path.join(BENCH_ROOT, '.venv', 'bin', 'python');
  if (fs.existsSync(venvPython))
    list.push({
      name: 'PyTorch engine: config.json names one layer more than the weights hold',
      run: () => {
        const m = path.join(work, 'one-layer-more');
        fs.cpSync(demo, m, { recursive: true });
        const cfg = JSON.parse(fs.readFileSync(path.join(m, 'config.json'), 'utf8')) as { num_hidden_layers: number };
        cfg.num_hidden_layers += 1;
        fs.writeFileSync(path.join(m, 'config.json'), JSON.stringify(cfg));
        return cliRun([...args(m, path.join(work, 'one-layer-more-run')), '--engine', 'pytorch', '--python', venvPython]);
      },
      check: refusedWith(/do not match config\.json: \d+ tensors the config needs are not in the weight files \(model\.layers\.4\./),
    });
  else log(`no ${venvPython}: the PyTorch weight-check class is not run`);
  // Sweeps: a changed SPEC re-runs what changed; a crafted sweep.json cannot reach outside the sweep.
  const sweepOut = path.join(work, 'sweep');
  const spec = (limit: number) => {
    const file = path.join(work, `spec-${limit}.json`);
    fs.writeFileSync(
      file,
      JSON.stringify({ data: corpus, models: [{ name: 'demo', path: demo }], shots: [2], limit, batchSize: 1, shards: 1, provider: 'cpu', cache }),
    );
    return file;
  };
  list.push({
    name: 'sweep re-run into the same folder with a changed SPEC (limit 1 -> 2)',
    run: () => {
      const first = cliRun(['sweep', spec(1), '--out', sweepOut]);
      if (first.status !== 0) return first;
      return cliRun(['sweep', spec(2), '--out', sweepOut]);
    },
    check: (r) => {
      if (r.status !== 0) return `failed: exit ${r.status}`;
      const run = path.join(sweepOut, 'demo.onnxruntime.2shot.answer.none', 'run');
      const summary = JSON.parse(fs.readFileSync(path.join(run, 'summary.json'), 'utf8')) as { questions: number };
      const manifest = JSON.parse(fs.readFileSync(path.join(run, 'manifest.json'), 'utf8')) as { limitPerSubject: number; totalQuestions: number };
      // The merged run must be the new SPEC's (limit 2, all its questions), not the old one's kept.
      return manifest.limitPerSubject === 2 && summary.questions === manifest.totalQuestions ? 'recovered' : 'mixed';
    },
  });
  list.push({
    name: 'sweep --merge with a crafted sweep.json whose run folder is outside the sweep',
    run: () => {
      const plan = JSON.parse(fs.readFileSync(path.join(sweepOut, 'sweep.json'), 'utf8')) as { experiments: { runDir: string }[] };
      plan.experiments[0].runDir = outsideDir;
      fs.writeFileSync(path.join(sweepOut, 'sweep.json'), JSON.stringify(plan));
      return cliRun(['sweep', '--merge', '--out', sweepOut]);
    },
    check: refusedWith(/sweep\.json: field "experiments\[0\]\.runDir" .* not a folder inside the sweep folder/),
  });
  return list;
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
