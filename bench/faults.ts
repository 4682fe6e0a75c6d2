/**
 * Fault injection against evaluation run folders, on a generated demo model, through the real CLI:
 *   - SIGKILL at random moments (during load, planning, scoring, appending), then resume, N times;
 *   - two writers started at once on one folder;
 *   - manifest.json deleted, and the weights swapped under the same config.json, before a resume;
 *   - a torn last record line, and a corrupt line in the middle of records.jsonl.
 * Recoverable faults must end in exactly the records and summary of an uninterrupted run; the others
 * must be refused with their reason. Prints one line on stdout:
 *   faults injected N, runs recovered exactly R, refused correctly F, questions lost 0, duplicated 0
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

  log(`${((Date.now() - t0) / 1000).toFixed(0)} s in ${work}`);
  process.stdout.write(
    `faults injected ${faults}, runs recovered exactly ${recovered}, refused correctly ${refused}, questions lost ${lost}, duplicated ${duplicated}\n`,
  );
  if (failures || lost || duplicated) process.exitCode = 1;
  else fs.rmSync(work, { recursive: true, force: true });
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
