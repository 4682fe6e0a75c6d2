/**
 * The extension host's side of the inference process: forks it, matches responses to requests by id,
 * and survives its death. When the process dies, every pending request fails with a message saying so,
 * and the next request starts a fresh process and reloads the last model before running.
 * No vscode import: the command line and tests use it too.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import {
  EngineFailure,
  isEngineToHost,
  type EngineMethod,
  type EngineMethods,
  type EngineToHost,
  type HostToEngine,
  type InferenceBackend,
  type LoadOptions,
  type ModelInfo,
} from '../shared/protocol';

interface Pending {
  method: EngineMethod;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export interface EngineClientOptions {
  /** Path of the bundled inference-process.js. */
  entry?: string;
  onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  onExit?: (description: string) => void;
  /** Extra environment for the child (e.g. thread counts). */
  env?: NodeJS.ProcessEnv;
}

export class EngineClient implements InferenceBackend {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private lastLoad: { modelPath: string; options: LoadOptions } | null = null;
  private loaded: Promise<ModelInfo> | null = null;
  private disposed = false;

  constructor(private readonly options: EngineClientOptions = {}) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get isRunning(): boolean {
    return this.child !== null;
  }

  /** Loads a model; remembered so that a restarted process loads it again before its first request. */
  load(modelPath: string, options: LoadOptions): Promise<ModelInfo> {
    this.lastLoad = { modelPath, options };
    this.loaded = this.send('load', { modelPath, options });
    this.loaded.catch(() => {
      this.loaded = null;
    });
    return this.loaded;
  }

  async call<M extends EngineMethod>(method: M, params: EngineMethods[M]['params'], signal?: AbortSignal): Promise<EngineMethods[M]['result']> {
    if (method === 'load') {
      const p = params as EngineMethods['load']['params'];
      return (await this.load(p.modelPath, p.options)) as EngineMethods[M]['result'];
    }
    if (!this.child && this.lastLoad && method !== 'shutdown') await this.load(this.lastLoad.modelPath, this.lastLoad.options);
    else if (this.loaded) await this.loaded;
    return this.send(method, params, signal);
  }

  private send<M extends EngineMethod>(method: M, params: EngineMethods[M]['params'], signal?: AbortSignal): Promise<EngineMethods[M]['result']> {
    if (this.disposed) return Promise.reject(new EngineFailure('process-died', 'the inference client was disposed'));
    const child = this.ensureChild();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new EngineFailure('cancelled', 'the request was cancelled'));
      const onAbort = () => {
        if (!this.pending.has(id)) return;
        this.pending.delete(id);
        this.post({ type: 'cancel', id });
        reject(new EngineFailure('cancelled', 'the request was cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        method,
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(v as EngineMethods[M]['result']);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      child.send({ type: 'request', id, method, params } as HostToEngine);
    });
  }

  /** Stops the process (e.g. "MoE: Restart inference process"); the next request starts a new one. */
  restart(): void {
    this.kill('restarted by the user');
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    this.kill('the extension is shutting down');
  }

  private post(m: HostToEngine): void {
    if (this.child?.connected) this.child.send(m);
  }

  private kill(reason: string): void {
    const child = this.child;
    if (!child) return;
    this.child = null;
    this.loaded = null;
    this.failAll(`The inference process was stopped (${reason}).`);
    child.kill('SIGKILL');
  }

  private ensureChild(): ChildProcess {
    if (this.child) return this.child;
    const entry = this.options.entry ?? path.join(__dirname, 'inference-process.js');
    const child = fork(entry, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...this.options.env },
      execArgv: [],
    });
    this.child = child;
    const log = this.options.onLog ?? (() => {});
    child.stdout?.on('data', (d: Buffer) => log('info', d.toString().trimEnd()));
    child.stderr?.on('data', (d: Buffer) => log('warn', d.toString().trimEnd()));
    child.on('message', (m: unknown) => {
      if (isEngineToHost(m)) this.onMessage(m);
    });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = null;
      this.loaded = null;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      this.failAll(`The inference process ${how}. Your request was not completed; the next request starts a fresh process.`);
      this.options.onExit?.(how);
    });
    child.on('error', (e) => log('error', `inference process error: ${e.message}`));
    return child;
  }

  private onMessage(m: EngineToHost): void {
    if (m.type === 'log') return this.options.onLog?.(m.level, m.message);
    if (m.type !== 'response') return;
    const p = this.pending.get(m.id);
    if (!p) return; // cancelled or stale
    this.pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new EngineFailure(m.error.code, m.error.message));
  }

  private failAll(message: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new EngineFailure('process-died', `${message} (while running ${p.method})`));
    }
  }
}
