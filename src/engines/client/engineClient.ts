/**
 * The extension host's side of an inference process, and the one owner of its lifecycle: it starts the
 * process, knows which model it has loaded (or is loading), matches responses to requests by id, and
 * survives its death. When the process dies, every pending request fails with a message saying so, and
 * the next request starts a fresh process and reloads the last model before running. Callers that show
 * engine state (ModelManager's status bar) ask it rather than keep their own copy.
 * The process itself is behind an EngineChannel: the forked Node process of the ONNX Runtime engine
 * (nodeChannel, here) or the PyTorch worker (pythonChannel, pythonWorker.ts); the bookkeeping is the same.
 * No vscode import: the command line's benchmarks, the evaluation pool and tests use it too.
 */
import { fork } from 'node:child_process';
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
  type WorkerTokenizeResult,
} from '../../shared/protocol';
import { unpackTokenizeResults } from '../../shared/tokenizeWire';

/** One running inference process, as the client sees it. */
export interface EngineChannel {
  readonly pid: number | undefined;
  send(m: HostToEngine): void;
  /** SIGKILL; the channel then reports its exit. */
  kill(): void;
  /** Turns a result off the wire into the protocol's shape (the worker sends some fields compactly). */
  adapt?(method: EngineMethod, params: unknown, result: unknown): unknown;
}

export interface ChannelEvents {
  onMessage(m: EngineToHost): void;
  /** The process ended; description says how ("was killed by SIGKILL", "exited with code 1"). */
  onExit(description: string): void;
  onLog(level: 'info' | 'warn' | 'error', message: string): void;
}

export type ChannelFactory = (events: ChannelEvents, env: NodeJS.ProcessEnv | undefined) => EngineChannel;

/** The ONNX Runtime engine: a forked Node process with the 'advanced' IPC serialisation. */
export function nodeChannel(entry?: string): ChannelFactory {
  return (events, env) => {
    const child = fork(entry ?? path.join(__dirname, 'inference-process.js'), [], {
      serialization: 'advanced',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, ...env },
      execArgv: [],
    });
    child.stdout?.on('data', (d: Buffer) => events.onLog('info', d.toString().trimEnd()));
    child.stderr?.on('data', (d: Buffer) => events.onLog('warn', d.toString().trimEnd()));
    child.on('message', (m: unknown) => {
      if (isEngineToHost(m)) events.onMessage(m);
    });
    child.on('exit', (code, signal) => events.onExit(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    child.on('error', (e) => events.onLog('error', `inference process error: ${e.message}`));
    return {
      get pid() {
        return child.pid;
      },
      send: (m) => {
        if (child.connected) child.send(m);
      },
      kill: () => child.kill('SIGKILL'),
      adapt: (method, params, result) =>
        method === 'tokenize' ? unpackTokenizeResults((params as EngineMethods['tokenize']['params']).texts, result as WorkerTokenizeResult) : result,
    };
  };
}

interface Pending {
  method: EngineMethod;
  params: unknown;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

export interface EngineClientOptions {
  /** Path of the bundled inference-process.js (the default channel). */
  entry?: string;
  /** Which process to run; default the ONNX Runtime inference process. */
  channel?: ChannelFactory;
  onLog?: (level: 'info' | 'warn' | 'error', message: string) => void;
  onExit?: (description: string) => void;
  /** Extra environment for the child (e.g. thread counts). */
  env?: NodeJS.ProcessEnv;
}

export class EngineClient implements InferenceBackend {
  private child: EngineChannel | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private lastLoad: { modelPath: string; options: LoadOptions } | null = null;
  /** The load on the running process, done or in flight; null when there is none or it failed. */
  private loaded: Promise<ModelInfo> | null = null;
  /** What that load returned, once it has. */
  private info: ModelInfo | null = null;
  private disposed = false;
  private channelKey = '';
  /** Both engine processes queue requests and run them in arrival order (serveProcess.ts, server.py). */
  readonly runsInArrivalOrder = true;

  constructor(private readonly options: EngineClientOptions = {}) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The model the running process has loaded; null before a load finishes, after one fails and once the process ends. */
  get model(): ModelInfo | null {
    return this.info;
  }

  /** The running process's load of this model with these options, done or in flight; null if it has none. */
  currentLoad(modelPath: string, options: LoadOptions): Promise<ModelInfo> | null {
    if (!this.child || !this.loaded || !this.lastLoad) return null;
    const same = this.lastLoad.modelPath === modelPath && JSON.stringify(this.lastLoad.options) === JSON.stringify(options);
    return same ? this.loaded : null;
  }

  /** Loads a model; remembered so that a restarted process loads it again before its first request. */
  load(modelPath: string, options: LoadOptions): Promise<ModelInfo> {
    this.lastLoad = { modelPath, options };
    this.info = null;
    const loaded = this.send('load', { modelPath, options });
    this.loaded = loaded;
    // Registered before the caller's own await, so `model` is set when the caller resumes.
    loaded.then(
      (info) => {
        if (this.loaded === loaded) this.info = info;
      },
      () => {
        if (this.loaded === loaded) this.loaded = null;
      },
    );
    return loaded;
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
    let child: EngineChannel;
    try {
      child = this.ensureChild();
    } catch (e) {
      return Promise.reject(e);
    }
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
        params,
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

  /**
   * Which process to run from now on (engine choice). A different key stops the running process; the next
   * request starts the new one and reloads the last model there.
   */
  setChannel(channel: ChannelFactory, key: string): void {
    if (key === this.channelKey) return;
    this.channelKey = key;
    this.options.channel = channel;
    this.kill('switching to another inference engine');
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
    this.child?.send(m);
  }

  private kill(reason: string): void {
    const child = this.child;
    if (!child) return;
    this.forgetProcess();
    this.failAll(`The inference process was stopped (${reason}).`);
    child.kill();
  }

  /** The process is gone: so is its model (lastLoad stays, for the next process to load). */
  private forgetProcess(): void {
    this.child = null;
    this.loaded = null;
    this.info = null;
  }

  private ensureChild(): EngineChannel {
    if (this.child) return this.child;
    const log = this.options.onLog ?? (() => {});
    const factory = this.options.channel ?? nodeChannel(this.options.entry);
    const child: EngineChannel = factory(
      {
        onMessage: (m) => {
          if (this.child === child) this.onMessage(m, child);
        },
        onLog: log,
        onExit: (how) => {
          if (this.child !== child) return;
          this.forgetProcess();
          this.failAll(`The inference process ${how}. Your request was not completed; the next request starts a fresh process.`);
          this.options.onExit?.(how);
        },
      },
      this.options.env,
    );
    this.child = child;
    return child;
  }

  private onMessage(m: EngineToHost, channel: EngineChannel): void {
    if (m.type === 'log') return this.options.onLog?.(m.level, m.message);
    if (m.type !== 'response') return;
    const p = this.pending.get(m.id);
    if (!p) return; // cancelled or stale
    this.pending.delete(m.id);
    if (!m.ok) return p.reject(new EngineFailure(m.error.code, m.error.message));
    try {
      p.resolve(channel.adapt ? channel.adapt(p.method, p.params, m.result) : m.result);
    } catch (e) {
      p.reject(new EngineFailure('internal', `malformed ${p.method} result from the inference process: ${(e as Error).message}`));
    }
  }

  private failAll(message: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new EngineFailure('process-died', `${message} (while running ${p.method})`));
    }
  }
}
