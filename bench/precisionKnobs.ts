/**
 * What ONNX Runtime's session settings do to a quantised graph's speed and memory (issue 23's targets):
 * loads MODEL at PRECISION once per setting, each in its own process, and reports load time, trace time at
 * 177 tokens (median of 3 after a warm-up) and the process's peak RSS. The graph cache (CACHE) is built by
 * the first setting and reused by the others (session settings are not part of its key).
 *
 *   node dist/bench/precisionKnobs.js MODEL CACHE int8|int4 [SETTING ...]
 *
 * SETTING: name=JSON of {"env": {...}, "session": {...session config entries...}, "threads": N}; the
 * default runs "default", "threads=2", "noprepack" and (int4) "q4gemm" (ORT_USE_MLAS_Q4_GEMM_MOE=1). A setting
 * adds to the engine's own session options (which, at int4, already disable prepacking: runtime.ts).
 */
import * as ort from 'onnxruntime-node';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runBenchmark, writeResult, BENCH_ROOT } from './common';
import { Engine } from '../src/engines/onnxruntime/engine';
import type { WeightPrecision } from '../src/shared/protocol';

interface Setting {
  env?: Record<string, string>;
  session?: Record<string, string>;
  threads?: number;
}

const DEFAULTS: Record<string, Setting> = {
  default: {},
  'threads=2': { threads: 2 },
  noprepack: { session: { 'session.disable_prepacking': '1' } },
  q4gemm: { env: { ORT_USE_MLAS_Q4_GEMM_MOE: '1' } },
};

if (process.argv[2] === '--child')
  runBenchmark(() => child(process.argv[3], process.argv[4], process.argv[5] as WeightPrecision, JSON.parse(process.argv[6]) as Setting));
else runBenchmark(parent);

async function parent(): Promise<void> {
  const [model, cache, precision, ...named] = process.argv.slice(2);
  const settings = named.length
    ? Object.fromEntries(named.map((s) => [s.split('=')[0], DEFAULTS[s] ?? (JSON.parse(s.slice(s.indexOf('=') + 1)) as Setting)]))
    : Object.fromEntries(Object.entries(DEFAULTS).filter(([n]) => n !== 'q4gemm' || precision === 'int4'));
  const results: Record<string, unknown>[] = [];
  for (const [name, setting] of Object.entries(settings)) {
    const r = spawnSync(process.execPath, [__filename, '--child', model, cache, precision, JSON.stringify(setting)], {
      encoding: 'utf8',
      env: { ...process.env, ...setting.env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    console.log(`${precision} ${name}: ${r.status === 0 ? r.stdout.trim().split('\n').pop() : `failed (${r.status})`}`);
    results.push({ precision, name, setting, ...(r.status === 0 ? JSON.parse(r.stdout.trim().split('\n').pop()!) : { error: `exit ${r.status}` }) });
  }
  // One file for both precisions (BENCHMARKS.md renders it): this precision's rows replace its earlier ones.
  const file = path.join(BENCH_ROOT, 'bench', 'results', 'precision-knobs.json');
  const earlier = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { results: { precision: string }[] }).results : [];
  writeResult('precision-knobs', {
    measuredAt: new Date().toISOString(),
    note: `bench/precisionKnobs.ts on ${model}, each setting in its own process one after another; the first setting of each precision built the cache (its load time), the others reused it`,
    results: [...earlier.filter((x) => x.precision !== precision), ...results],
  });
}

async function child(model: string, cacheDir: string, precision: WeightPrecision, setting: Setting): Promise<void> {
  const create = ort.InferenceSession.create.bind(ort.InferenceSession);
  // Adds the setting to every session the engine creates.
  type Create = (file: string, options?: ort.InferenceSession.SessionOptions) => Promise<ort.InferenceSession>;
  (ort.InferenceSession as unknown as { create: Create }).create = (file, options = {}) =>
    create(file, {
      ...options,
      ...(setting.threads ? { intraOpNumThreads: setting.threads } : {}),
      extra: { ...(options.extra as object | undefined), ...nest(setting.session ?? {}) },
    });
  const engine = new Engine(() => {});
  const t0 = performance.now();
  await engine.load(model, { executionProvider: 'cpu', precision, cacheDir });
  const loadMs = performance.now() - t0;
  const testDir = path.join(BENCH_ROOT, 'media', 'demo-data', 'mmlu', 'data', 'test');
  const text = fs.readFileSync(path.join(testDir, fs.readdirSync(testDir).sort()[0]), 'utf8');
  const [tok] = await engine.call('tokenize', { texts: [text] });
  const ids = tok.ids.slice(0, 177);
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const s = performance.now();
    await engine.trace({ ids }, { includeProbs: false, includeLastLogits: false });
    if (i > 0) times.push(performance.now() - s);
  }
  await engine.dispose();
  console.log(
    JSON.stringify({
      loadMs: Math.round(loadMs),
      trace177Ms: Math.round(times.sort((a, b) => a - b)[1]),
      peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    }),
  );
}

/** "session.disable_prepacking" -> { session: { disable_prepacking } }, the shape onnxruntime-node's `extra` takes. */
function nest(flat: Record<string, string>): Record<string, unknown> {
  const out: Record<string, Record<string, string>> = {};
  for (const [k, v] of Object.entries(flat)) {
    const [head, ...rest] = k.split('.');
    (out[head] ??= {})[rest.join('.')] = v;
  }
  return out;
}
