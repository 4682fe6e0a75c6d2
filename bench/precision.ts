/**
 * What each weight precision costs on an OLMoE-1B-7B-shaped checkpoint in the format transformers writes
 * (bf16 shards, random weights; bench/precision_checkpoint.py), side by side in one run: ONNX Runtime CPU at
 * fp32, int8 and int4, and the PyTorch engine (transformers) at bf16 on the CPU as the peer. Per
 * precision: graph cache size, first-build time (load with an empty cache), peak RSS of the process tree,
 * 177- and 600-token trace time (median of 3 after a warm-up), the time a later load takes with the cache
 * built (ONNX Runtime: session creation, which prepacks the quantised weights), top-k agreement with ONNX Runtime fp32, and the load average while it ran (the machine may
 * be shared). Each precision runs in its own child process, one after another; its cache is deleted once
 * measured, and the results file is rewritten after each, so a failed precision leaves the others.
 *
 *   node esbuild.mjs && node dist/bench/precision.js [--layers N | --full] [--keep DIR] [--only onnxruntime-int8,...] [--generate-only]
 *
 * Default --layers 1: OLMoE's real widths (hidden 2048, 64 experts of 1024, vocabulary 50304) with one
 * decoder layer, so that every run stays under about 3 GB. --full is the real 16-layer model: 13 GB of
 * bf16 shards, a 26 GiB fp32 cache (deleted before the next precision builds), up to about 21 GB resident
 * for the PyTorch row; at that size the fp32 row lifts the engine's memory check (it counts every fp32
 * weight as resident) and records that it did. Writes bench/results/precision.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, execFileSync } from 'node:child_process';
import { machineInfo, writeResult, runBenchmark, BENCH_ROOT } from './common';
import { Engine } from '../src/engines/onnxruntime/engine';
import { EngineClient } from '../src/engines/client/engineClient';
import { pythonChannel, defaultPython } from '../src/engines/client/pythonWorker';
import { compareRouting } from '../src/analysis/precisionAgreement';
import { makeDemoModel } from '../src/engines/onnxruntime/demo/makeDemoModel';
import type { InferenceBackend, Routing, WeightPrecision } from '../src/shared/protocol';

const RUNS: { name: string; engine: 'onnxruntime' | 'pytorch'; precision: WeightPrecision }[] = [
  { name: 'onnxruntime fp32', engine: 'onnxruntime', precision: 'fp32' },
  { name: 'onnxruntime int8', engine: 'onnxruntime', precision: 'int8' },
  { name: 'onnxruntime int4', engine: 'onnxruntime', precision: 'int4' },
  { name: 'pytorch bf16', engine: 'pytorch', precision: 'bf16' },
];
const LENGTHS = [177, 600];

interface ChildReport {
  loadMs: number;
  /** A second load with the cache built (ONNX Runtime only). */
  reloadMs?: number;
  graphReused: boolean;
  cacheBytes: number;
  traceMs: Record<string, number>;
  dtype: string;
  precision?: string;
}

if (process.argv[2] === '--child')
  runBenchmark(() => child(process.argv[3], process.argv[4] as 'onnxruntime' | 'pytorch', process.argv[5] as WeightPrecision, process.argv[6]));
else runBenchmark(parent);

function python(): string {
  const venv = path.join(BENCH_ROOT, '.venv', 'bin', 'python');
  return process.env.MOE_SCOPE_PYTHON || (fs.existsSync(venv) ? venv : defaultPython(undefined));
}

async function parent(): Promise<void> {
  const full = process.argv.includes('--full');
  const li = process.argv.indexOf('--layers');
  const layers = full ? 16 : li > 0 ? Number(process.argv[li + 1]) : 1;
  const ki = process.argv.indexOf('--keep');
  const work = ki > 0 ? process.argv[ki + 1] : fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-bench-precision-'));
  fs.mkdirSync(work, { recursive: true });
  const model = path.join(work, 'model');
  const g0 = performance.now();
  if (!fs.existsSync(path.join(model, 'config.json'))) {
    // The demo generator's tokenizer (trained on MMLU text) serves the checkpoint; its ids fit OLMoE's vocabulary.
    const tok = path.join(work, 'tokenizer');
    makeDemoModel(tok, { family: 'olmoe', overrides: { layers: 1, experts: 2, topK: 1 }, corpusDir: path.join(BENCH_ROOT, 'media', 'demo-data', 'mmlu') });
    execFileSync(
      python(),
      [
        path.join(BENCH_ROOT, 'bench', 'precision_checkpoint.py'),
        '--out',
        model,
        '--tokenizer-dir',
        tok,
        ...(full ? ['--full'] : ['--layers', String(layers)]),
      ],
      {
        stdio: 'inherit',
      },
    );
  }
  if (process.argv.includes('--generate-only')) return;
  const checkpointBytes = fs.readdirSync(model).reduce((a, f) => a + (f.endsWith('.safetensors') ? fs.statSync(path.join(model, f)).size : 0), 0);
  const generateSeconds = (performance.now() - g0) / 1000;
  const results: Record<string, unknown>[] = [];
  const routings = new Map<string, Record<string, Routing>>();
  const repeats = 3;
  const oi = process.argv.indexOf('--only');
  const only = oi > 0 ? process.argv[oi + 1].split(',') : null;
  const write = () => writeResult(resultName, { measuredAt: new Date().toISOString(), machine: machine(), checkpoint, repeats, results });
  const resultName = process.env.MOE_SCOPE_BENCH_RESULT ?? 'precision';
  const checkpoint = {
    layers,
    note:
      layers === 16
        ? 'OLMoE-1B-7B at real size (16 layers), random weights, bf16 shards in the format transformers writes'
        : `OLMoE-1B-7B widths (hidden 2048, 64 experts x 1024, vocabulary 50304) with ${layers} of its 16 decoder layers, random weights, bf16 shards in the format transformers writes`,
    bytes: checkpointBytes,
    generateSeconds: round(generateSeconds, 1),
  };
  for (const run of RUNS.filter((r) => !only || only.includes(`${r.engine}-${r.precision}`))) {
    const cache = path.join(work, `cache-${run.engine}-${run.precision}`);
    fs.rmSync(cache, { recursive: true, force: true });
    const out = path.join(work, `routing-${run.engine}-${run.precision}.json`);
    let measured: { report: ChildReport; peakTreeRssKiB: number; meanLoadAverage: number };
    try {
      measured = await runChild([model, run.engine, run.precision, `${cache}|${out}|${repeats}`], overrideMemory(run.precision));
    } catch (e) {
      // One precision failing (out of memory, refused) leaves the others' numbers standing.
      fs.rmSync(cache, { recursive: true, force: true });
      results.push({ name: run.name, engine: run.engine, precision: run.precision, error: (e as Error).message });
      console.error(`${run.name}: ${(e as Error).message}`);
      write();
      continue;
    }
    const { report, peakTreeRssKiB } = measured;
    const saved = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<
      string,
      { numLayers: number; numTokens: number; numExperts: number; topK: number; topExperts: number[]; probs: number[] }
    >;
    const r: Record<string, Routing> = {};
    for (const [k, v] of Object.entries(saved))
      r[k] = {
        ...v,
        topExperts: Uint16Array.from(v.topExperts),
        probs: Float32Array.from(v.probs),
        topWeights: new Float32Array(0),
        entropy: new Float32Array(0),
      };
    routings.set(run.name, r);
    // Measured: the next run needs the disk (the real size's fp32 cache alone is 26 GB).
    fs.rmSync(cache, { recursive: true, force: true });
    results.push({
      name: run.name,
      engine: run.engine,
      precision: run.precision,
      ...report,
      peakRssMiB: Math.round(peakTreeRssKiB / 1024),
      meanLoadAverage: measured.meanLoadAverage,
      ...(overrideMemory(run.precision) ? { memoryCheckOverridden: true } : {}),
    });
    console.error(`${run.name}: ${JSON.stringify(results[results.length - 1])}`);
    write();
  }
  const reference = routings.get('onnxruntime fp32');
  for (const res of results) {
    const r = routings.get(res.name as string);
    if (!reference || !r) continue;
    res.agreementWithFp32 = Object.fromEntries(
      LENGTHS.map((n) => {
        const a = compareRouting(reference[n], r[n]);
        return [n, { setAgreement: round(a.setAgreement, 4), expertOverlap: round(a.expertOverlap, 4), maxProbDiff: Number(a.maxProbDiff.toPrecision(3)) }];
      }),
    );
  }
  write();
  if (ki < 0) fs.rmSync(work, { recursive: true, force: true });
}

function machine() {
  return machineInfo({
    loadAverage: os
      .loadavg()
      .map((x) => Math.round(x * 10) / 10)
      .join(' / '),
  });
}

/**
 * fp32 at real size: the engine's memory check counts every fp32 weight as resident (26.7 GiB) and refuses
 * it on a 24 GB machine, but the weights are memory-mapped from the cache and what is measured is the
 * resident peak; the benchmark lifts the check (MOE_SCOPE_AVAILABLE_MEMORY) for fp32 so that the
 * comparison has its reference, and says so in the result.
 */
function overrideMemory(precision: WeightPrecision): Record<string, string> | undefined {
  return precision === 'fp32' && process.argv.includes('--full') ? { MOE_SCOPE_AVAILABLE_MEMORY: String(64 * 2 ** 30) } : undefined;
}

/** Runs one child and samples the resident memory of its whole process tree (the PyTorch worker included). */
function runChild(args: string[], env?: Record<string, string>): Promise<{ report: ChildReport; peakTreeRssKiB: number; meanLoadAverage: number }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [__filename, '--child', ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
    let out = '';
    let peak = 0;
    const loads: number[] = [];
    const timer = setInterval(() => (peak = Math.max(peak, treeRssKiB(proc.pid!))), 100);
    // The machine is shared: the 1-minute load average while this child ran says how contended its numbers are.
    const loadTimer = setInterval(() => loads.push(os.loadavg()[0]), 5000);
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('exit', (code) => {
      clearInterval(timer);
      clearInterval(loadTimer);
      if (code !== 0) return reject(new Error(`child ${args.join(' ')} exited with ${code}`));
      const line = out.trim().split('\n').pop()!;
      const meanLoadAverage = loads.length ? round(loads.reduce((a, b) => a + b, 0) / loads.length, 1) : round(os.loadavg()[0], 1);
      resolve({ report: JSON.parse(line) as ChildReport, peakTreeRssKiB: peak, meanLoadAverage });
    });
  });
}

function treeRssKiB(root: number): number {
  const parent = new Map<number, number>();
  const rss = new Map<number, number>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = fs.readFileSync(`/proc/${name}/status`, 'utf8');
      parent.set(Number(name), Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0));
      rss.set(Number(name), Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0));
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  for (const [pid, kb] of rss) {
    for (let p: number | undefined = pid; p; p = parent.get(p)) {
      if (p === root) {
        total += kb;
        break;
      }
    }
  }
  return total;
}

async function child(model: string, engineKind: 'onnxruntime' | 'pytorch', precision: WeightPrecision, paths: string): Promise<void> {
  const [cacheDir, routingOut, repeatText] = paths.split('|');
  const repeats = Number(repeatText || 3);
  let backend: InferenceBackend & { dispose(): Promise<void> };
  if (engineKind === 'onnxruntime') backend = new Engine((level, m) => level !== 'info' && console.error(m));
  else {
    process.env.MOE_SCOPE_WORKER_DIR ??= path.join(BENCH_ROOT, 'python');
    const client = new EngineClient({ channel: pythonChannel(python()) });
    backend = { call: (m, p, s) => client.call(m, p, s), dispose: () => client.dispose() };
  }
  const t0 = performance.now();
  const info = await backend.call('load', { modelPath: model, options: { executionProvider: 'cpu', precision, cacheDir } });
  const loadMs = performance.now() - t0;
  // The same ids for every precision: a long MMLU text cut to each length.
  const testDir = path.join(BENCH_ROOT, 'media', 'demo-data', 'mmlu', 'data', 'test');
  const text = fs.readFileSync(path.join(testDir, fs.readdirSync(testDir).sort()[0]), 'utf8');
  const [tok] = await backend.call('tokenize', { texts: [text.repeat(4)] });
  const traceMs: Record<string, number> = {};
  const saved: Record<string, unknown> = {};
  for (const n of LENGTHS) {
    const ids = tok.ids.slice(0, n);
    if (ids.length < n) throw new Error(`the sample text has only ${ids.length} tokens`);
    const times: number[] = [];
    let last;
    for (let i = 0; i <= repeats; i++) {
      const s = performance.now();
      last = await backend.call('trace', { input: { ids }, options: { includeProbs: true, includeLastLogits: false } });
      if (i > 0) times.push(performance.now() - s);
    }
    traceMs[n] = round(times.sort((a, b) => a - b)[Math.floor((times.length - 1) / 2)], 1);
    const r = last!.routing;
    saved[n] = {
      numLayers: r.numLayers,
      numTokens: r.numTokens,
      numExperts: r.numExperts,
      topK: r.topK,
      topExperts: Array.from(r.topExperts),
      probs: Array.from(r.probs!),
    };
  }
  fs.writeFileSync(routingOut, JSON.stringify(saved));
  await backend.dispose();
  let reloadMs: number | undefined;
  if (engineKind === 'onnxruntime') {
    const again = new Engine(() => {});
    const r0 = performance.now();
    await again.load(model, { executionProvider: 'cpu', precision, cacheDir });
    reloadMs = Math.round(performance.now() - r0);
    await again.dispose();
  }
  const report: ChildReport = {
    loadMs: Math.round(loadMs),
    ...(reloadMs !== undefined ? { reloadMs } : {}),
    graphReused: false,
    cacheBytes: engineKind === 'onnxruntime' ? duBytes(cacheDir) : 0,
    traceMs,
    dtype: info.dtype,
    precision: info.precision,
  };
  console.log(JSON.stringify(report));
}

function duBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      // Hard links to the checkpoint's own files cost no disk: count only files with one link.
      else if (e.isFile()) {
        const st = fs.statSync(p);
        if (st.nlink === 1) total += st.size;
      }
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return total;
}

function round(x: number, d: number): number {
  return Math.round(x * 10 ** d) / 10 ** d;
}
