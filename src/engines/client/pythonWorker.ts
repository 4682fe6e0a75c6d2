/**
 * The PyTorch engine's process: `python -m moe_scope_worker` (python/moe_scope_worker) over stdin/stdout
 * frames (frames.ts), behind the same EngineChannel as the ONNX Runtime process. Also: which Python to
 * use and what it offers (`--check`), for engine 'auto' and "MoE: Check inference environment".
 * No vscode import: the command line and tests use it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FrameReader, WORKER_HELLO, encodeFrame } from './frames';
import type { ChannelFactory, EngineChannel } from './engineClient';
import {
  EngineFailure,
  type EngineMethod,
  type EngineMethods,
  type EngineToHost,
  type PythonEnvironment,
  type TokenSpan,
  type TraceResult,
  type WorkerTokenizeResult,
  type WorkerTraceResult,
  spansOfDecodedTokens,
} from '../../shared/protocol';
import { softmax4 } from '../onnxruntime/routing';
import { checkoutRoot, choosePython } from './pythonDiscovery';
import { unpackTokenizeResults } from '../../shared/tokenizeWire';

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

/**
 * How long the worker may take to say hello (the Python started and ran our code: seconds, unless a
 * wrapper hangs) and to be ready (torch and transformers imported: slow on a cold disk, never minutes).
 * MOE_SCOPE_WORKER_START_TIMEOUT_S and MOE_SCOPE_WORKER_READY_TIMEOUT_S override them.
 */
export function workerTimeouts(env: NodeJS.ProcessEnv = process.env): { helloMs: number; readyMs: number } {
  const seconds = (name: string, fallback: number) => {
    const v = Number(env[name]);
    return 1000 * (env[name] !== undefined && Number.isFinite(v) && v > 0 ? v : fallback);
  };
  return { helloMs: seconds('MOE_SCOPE_WORKER_START_TIMEOUT_S', 60), readyMs: seconds('MOE_SCOPE_WORKER_READY_TIMEOUT_S', 600) };
}

/** Every worker this process started and has not seen exit: killed when this process exits, however it exits. */
const liveWorkers = new Set<ChildProcess>();
let reaperInstalled = false;
function reapOnExit(child: ChildProcess): void {
  liveWorkers.add(child);
  child.once('exit', () => liveWorkers.delete(child));
  child.once('error', () => liveWorkers.delete(child));
  if (reaperInstalled) return;
  reaperInstalled = true;
  process.on('exit', killLiveWorkers);
}

/** SIGKILLs every live worker (the 'exit' hook; also for a second Ctrl-C, before the process ends). */
export function killLiveWorkers(): void {
  for (const c of liveWorkers) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export function pythonChannel(python: string): ChannelFactory {
  return (events, env): EngineChannel => {
    const dir = requireWorkerDir();
    const child = spawn(python, ['-m', 'moe_scope_worker'], {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...env, PYTHONPATH: [dir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter), PYTHONUNBUFFERED: '1' },
    });
    reapOnExit(child);
    let exited = false;
    /** Why the host stopped the worker, when it did: reported instead of "was killed by SIGKILL". */
    let stopReason = '';
    const stop = (why: string) => {
      if (!stopReason) stopReason = why;
      child.kill('SIGKILL');
    };
    const timeouts = workerTimeouts({ ...process.env, ...env });
    let phase: 'hello' | 'ready' | 'running' = 'hello';
    let timer: NodeJS.Timeout | undefined = setTimeout(
      () =>
        stop(
          `did not start: ${python} wrote no MoE Scope worker hello within ${timeouts.helloMs / 1000} s (a wrapper script that hangs or waits for input?); stopped it`,
        ),
      timeouts.helloMs,
    );
    const clearTimer = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    const reader = new FrameReader(
      (m) => {
        if (phase === 'ready' && (m as EngineToHost).type === 'ready') {
          phase = 'running';
          clearTimer();
        }
        events.onMessage(m as EngineToHost);
      },
      {
        hello: WORKER_HELLO,
        onHello: () => {
          phase = 'ready';
          clearTimer();
          timer = setTimeout(
            () => stop(`did not get ready: the worker started but had not imported torch and transformers after ${timeouts.readyMs / 1000} s; stopped it`),
            timeouts.readyMs,
          );
        },
      },
    );
    child.stdout.on('data', (d: Buffer) => {
      if (stopReason) return;
      try {
        reader.push(d);
      } catch (e) {
        const message = (e as Error).message;
        const why =
          phase === 'hello'
            ? `did not start: ${python} printed something else on stdout before the worker started (${message}); a wrapper script or shell profile must not write to stdout`
            : `sent a malformed frame (${message}); stopped it`;
        events.onLog('error', `PyTorch worker ${why}`);
        stop(why);
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
      clearTimer();
      if (exited) return;
      exited = true;
      const hint = (e as NodeJS.ErrnoException).code === 'ENOENT' ? ` (no such interpreter: set moeScope.pythonPath or --python / MOE_SCOPE_PYTHON)` : '';
      events.onExit(`could not start: ${python}: ${e.message}${hint}`);
    });
    child.on('exit', (code, signal) => {
      clearTimer();
      if (exited) return;
      exited = true;
      const last = stderrTail.trim().split('\n').slice(-3).join(' | ');
      if (stopReason) return events.onExit(stopReason);
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
export function adaptWorkerResult(method: EngineMethod, params: unknown, result: unknown): unknown {
  if (method === 'tokenize') {
    const { texts } = params as EngineMethods['tokenize']['params'];
    return unpackTokenizeResults(texts, result as WorkerTokenizeResult);
  }
  if (method === 'trace') {
    const r = result as WorkerTraceResult;
    const input = (params as EngineMethods['trace']['params']).input;
    let tokens: TokenSpan[];
    if ('text' in input)
      tokens = unpackTokenizeResults([input.text], { ids: r.ids, offsets: r.offsets!, counts: Int32Array.of(r.ids.length), inserted: r.inserted ?? [] })[0]
        .tokens;
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

/**
 * Runs `python -m moe_scope_worker --check`; a Python that cannot run it is reported, not thrown. It runs in
 * its own process group, killed whole (a wrapper script's own children included) when it takes too long.
 */
export function checkPython(python: string, timeoutMs = 60_000): Promise<PythonEnvironment> {
  const dir = workerDir();
  return new Promise((resolve) => {
    const failed = (why: string): PythonEnvironment => ({ python: '', executable: python, problems: [why], usable: false, gpu: false });
    let child: ChildProcess;
    try {
      child = spawn(python, ['-m', 'moe_scope_worker', '--check'], {
        cwd: dir,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, PYTHONPATH: [dir, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter) },
      });
    } catch (e) {
      return resolve(failed(`${python}: cannot start (${(e as Error).message})`));
    }
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    process.on('exit', killGroup);
    let stdout = '';
    let stderr = '';
    const cap = (s: string, d: Buffer) => (s.length < 1 << 20 ? s + d.toString() : s);
    child.stdout!.on('data', (d: Buffer) => (stdout = cap(stdout, d)));
    child.stderr!.on('data', (d: Buffer) => (stderr = cap(stderr, d)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    const done = (r: PythonEnvironment) => {
      clearTimeout(timer);
      process.off('exit', killGroup);
      resolve(r);
    };
    child.on('error', (e) => {
      done(
        (e as NodeJS.ErrnoException).code === 'ENOENT'
          ? failed(`${python} not found: install Python 3.10+ with torch and transformers, or set moeScope.pythonPath / --python`)
          : failed(`${python}: cannot start (${e.message})`),
      );
    });
    child.on('close', (code) => {
      killGroup(); // anything the wrapper left behind in its group
      if (timedOut) return done(failed(`${python} -m moe_scope_worker --check did not answer within ${timeoutMs / 1000} s; stopped it`));
      try {
        done(JSON.parse(stdout.trim().split('\n').pop() ?? '') as PythonEnvironment);
      } catch {
        done(failed(`${python} -m moe_scope_worker --check failed: ${(stderr || `exit status ${code}`).trim().split('\n').slice(-2).join(' | ')}`));
      }
    });
  });
}

/**
 * The interpreter to use: an explicit one (--python), MOE_SCOPE_PYTHON, the checkout's .venv, else python3
 * on PATH; a relative path is taken from the current folder (pythonDiscovery.ts).
 */
export function defaultPython(explicit?: string): string {
  return choosePython({ explicit, env: process.env.MOE_SCOPE_PYTHON, base: process.cwd(), roots: [checkoutRoot(workerDir())] }).python;
}

/**
 * engine 'auto': PyTorch when that Python has torch, transformers and a GPU; else ONNX Runtime. A model
 * the ONNX Runtime engine refuses (`onnxRefusal`, from onnxEngineRefusal) goes to PyTorch whenever its
 * Python is usable, GPU or not.
 */
export function chooseEngine(env: PythonEnvironment, onnxRefusal?: string | null): { engine: 'pytorch' | 'onnxruntime'; why: string } {
  if (onnxRefusal && env.usable) return { engine: 'pytorch', why: `the ONNX Runtime engine does not build this model (${onnxRefusal})` };
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
