/**
 * The PyTorch engine's process: `python -m moe_scope_worker` (python/moe_scope_worker) over stdin/stdout
 * frames (frames.ts), behind the same EngineChannel as the ONNX Runtime process. Also: which Python to
 * use and what it offers (`--check`), for engine 'auto' and "MoE: Check inference environment".
 * No vscode import: the command line and tests use it too.
 */
import { spawn, execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FrameReader, encodeFrame } from './frames';
import type { ChannelFactory, EngineChannel } from './engineClient';
import {
  EngineFailure,
  type EngineMethod,
  type EngineMethods,
  type EngineToHost,
  type PythonEnvironment,
  type TokenSpan,
  type TokenizeResult,
  type TraceResult,
  type WorkerTokenizeResult,
  type WorkerTraceResult,
  spansOfDecodedTokens,
} from '../../shared/protocol';
import { softmax4 } from '../onnxruntime/routing';

/** The folder holding the moe_scope_worker package: MOE_SCOPE_WORKER_DIR, else python/ next to dist/ or src/. */
export function workerDir(): string {
  if (process.env.MOE_SCOPE_WORKER_DIR) return process.env.MOE_SCOPE_WORKER_DIR;
  // dist/extension.js, dist/cli.js, dist/bench/gpu/x.js and the unbundled sources all sit below the repository root.
  let dir = __dirname;
  for (let up = 0; up < 5; up++) {
    const cand = path.join(dir, 'python');
    if (fs.existsSync(path.join(cand, 'moe_scope_worker', '__main__.py'))) return cand;
    dir = path.dirname(dir);
  }
  return path.join(__dirname, '..', 'python');
}

function requireWorkerDir(): string {
  const dir = workerDir();
  if (!fs.existsSync(path.join(dir, 'moe_scope_worker', '__main__.py'))) {
    throw new EngineFailure(
      'bad-input',
      `the PyTorch worker package is missing (looked for ${dir}/moe_scope_worker; set MOE_SCOPE_WORKER_DIR to the repository's python/ folder)`,
    );
  }
  return dir;
}

export function pythonChannel(python: string): ChannelFactory {
  return (events, env): EngineChannel => {
    const dir = requireWorkerDir();
    const child = spawn(python, ['-m', 'moe_scope_worker'], {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env, PYTHONPATH: [dir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: '1' },
    });
    let exited = false;
    const reader = new FrameReader((m) => events.onMessage(m as EngineToHost));
    child.stdout.on('data', (d: Buffer) => {
      try {
        reader.push(d);
      } catch (e) {
        events.onLog('error', `PyTorch worker sent a malformed frame (${(e as Error).message}); stopping it`);
        child.kill('SIGKILL');
      }
    });
    let stderrTail = '';
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      stderrTail = (stderrTail + text).slice(-2000);
      events.onLog('warn', text.trimEnd());
    });
    child.stdin.on('error', () => {}); // a dead worker's closed pipe: reported through 'exit'
    child.on('error', (e) => {
      if (exited) return;
      exited = true;
      const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? ` (no such interpreter: set moeScope.pythonPath or --python / MOE_SCOPE_PYTHON)` : '';
      events.onExit(`could not start: ${python}: ${e.message}${hint}`);
    });
    child.on('exit', (code, signal) => {
      if (exited) return;
      exited = true;
      const last = stderrTail.trim().split('\n').slice(-3).join(' | ');
      events.onExit(signal ? `was killed by ${signal}` : `exited with code ${code}${code && last ? ` (${last})` : ''}`);
    });
    return {
      get pid() {
        return child.pid;
      },
      send: (m) => {
        if (!exited && child.stdin.writable) child.stdin.write(encodeFrame(m));
      },
      kill: () => child.kill('SIGKILL'),
      adapt: adaptWorkerResult,
    };
  };
}

/** The worker sends token ids and offsets as flat typed arrays; the host rebuilds the protocol's spans. */
function adaptWorkerResult(method: EngineMethod, params: unknown, result: unknown): unknown {
  if (method === 'tokenize') {
    const { texts } = params as EngineMethods['tokenize']['params'];
    return spansOf(texts, result as WorkerTokenizeResult);
  }
  if (method === 'trace') {
    const r = result as WorkerTraceResult;
    const input = (params as EngineMethods['trace']['params']).input;
    let tokens: TokenSpan[];
    if ('text' in input)
      tokens = spansOf([input.text], { ids: r.ids, offsets: r.offsets!, counts: Int32Array.of(r.ids.length), inserted: r.inserted ?? [] })[0].tokens;
    else tokens = spansOfDecodedTokens(r.ids, (i) => r.tokenTexts?.[i] ?? '');
    const out: TraceResult = {
      model: r.model,
      text: 'text' in input ? input.text : undefined,
      tokens,
      routing: r.routing,
      answerLogProbs: r.answerLogProbs,
      answerProbs: softmax4(r.answerLogProbs),
      lastLogits: r.lastLogits,
      ms: r.ms,
    };
    return out;
  }
  return result;
}

function spansOf(texts: string[], w: WorkerTokenizeResult): TokenizeResult[] {
  if (w.counts.length !== texts.length) throw new Error(`${w.counts.length} encodings for ${texts.length} texts`);
  const inserted = new Map(w.inserted);
  const out: TokenizeResult[] = [];
  let pos = 0;
  for (let i = 0; i < texts.length; i++) {
    const n = w.counts[i];
    const text = texts[i];
    const ids = Array.from(w.ids.subarray(pos, pos + n));
    const tokens: TokenSpan[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const start = w.offsets[2 * (pos + j)];
      const end = w.offsets[2 * (pos + j) + 1];
      tokens[j] = { id: ids[j], text: inserted.get(pos + j) ?? text.slice(start, end), start, end };
    }
    out.push({ ids, tokens });
    pos += n;
  }
  return out;
}

/** Runs `python -m moe_scope_worker --check`; a Python that cannot run it is reported, not thrown. */
export function checkPython(python: string, timeoutMs = 60_000): Promise<PythonEnvironment> {
  const dir = workerDir();
  return new Promise((resolve) => {
    execFile(
      python,
      ['-m', 'moe_scope_worker', '--check'],
      { cwd: dir, timeout: timeoutMs, env: { ...process.env, PYTHONPATH: [dir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) } },
      (err, stdout, stderr) => {
        const failed = (why: string): PythonEnvironment => ({ python: '', executable: python, problems: [why], usable: false, gpu: false });
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT')
          return resolve(failed(`${python} not found: install Python 3.10+ with torch and transformers, or set moeScope.pythonPath / --python`));
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as PythonEnvironment);
        } catch {
          resolve(failed(`${python} -m moe_scope_worker --check failed: ${(stderr || String(err ?? '')).trim().split('\n').slice(-2).join(' | ')}`));
        }
      },
    );
  });
}

/** The interpreter to use: an explicit one (setting, --python), MOE_SCOPE_PYTHON, else python3 on PATH. */
export function defaultPython(explicit?: string): string {
  return explicit || process.env.MOE_SCOPE_PYTHON || 'python3';
}

/** engine 'auto': PyTorch when that Python has torch, transformers and a GPU; else ONNX Runtime. */
export function chooseEngine(env: PythonEnvironment): { engine: 'pytorch' | 'onnxruntime'; why: string } {
  if (!env.usable) return { engine: 'onnxruntime', why: `the PyTorch engine is unavailable (${env.problems.join('; ')})` };
  if (!env.gpu)
    return {
      engine: 'onnxruntime',
      why: `${env.executable} has torch ${env.torch} and transformers ${env.transformers} but no GPU, and ONNX Runtime is faster on the CPU`,
    };
  const d = env.devices![0];
  return { engine: 'pytorch', why: `${env.executable} has torch ${env.torch}, transformers ${env.transformers} and ${d.name}` };
}

/** The `env` report (cli env --json) in lines a person reads. */
export function formatEnvironment(r: Record<string, unknown>): string {
  const env = r.python as PythonEnvironment;
  const ort = r.onnxruntime as { backends: string[]; error?: string };
  const auto = r.auto as { engine: string; why: string };
  const lines = [`Python: ${env.executable}${env.python ? ` (${env.python})` : ''}`];
  if (env.torch) lines.push(`  torch ${env.torch}${env.cuda ? ` (CUDA ${env.cuda})` : ''}, transformers ${env.transformers ?? 'missing'}`);
  for (const d of env.devices ?? [])
    lines.push(`  device: ${d.name}${d.totalBytes ? `, ${(d.freeBytes! / 2 ** 30).toFixed(1)} of ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB free` : ''}`);
  if (env.usable && !env.devices?.length) lines.push('  device: CPU only');
  for (const p of env.problems) lines.push(`  problem: ${p}`);
  lines.push(`ONNX Runtime providers: ${ort.error ? `unavailable (${ort.error})` : ort.backends.join(', ')}`);
  lines.push(`engine "auto" picks ${auto.engine}: ${auto.why}`);
  return lines.join('\n');
}
