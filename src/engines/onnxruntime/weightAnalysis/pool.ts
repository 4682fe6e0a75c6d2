/*
 * The worker threads that run the kernels over each streamed chunk (or the calling thread alone).
 */
import * as os from 'node:os';
import { Worker } from 'node:worker_threads';
import { f16ToF32 } from '../formats/dtypes';
import { compact, processRange, TILE, TILE_STRIDE, workerSource, type RangeJob } from './kernels';

export function defaultThreads(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, n));
}

export interface Accumulators {
  gram: Float64Array[];
  rowSums: Float64Array[];
  colSums: Float64Array[];
}

/**
 * Runs the kernels over each chunk, split by value range over worker threads: every thread decodes,
 * sums and multiplies its own tiles into private accumulators, so threads share nothing but the
 * read-only chunk buffers, and the partial sums are added once per layer. With one thread the same
 * kernels run on the calling thread.
 */
export class KernelPool {
  /** Experts padded to whole 4 x 4 blocks: the kernel needs no edge cases; zero rows cost < 4 rows of work. */
  readonly Ep: number;
  readonly slots: ArrayBuffer[] | SharedArrayBuffer[];
  private readonly f16: Float32Array;
  private readonly workers: { worker: Worker; pending: { resolve: (v: unknown) => void; reject: (e: Error) => void } | null; failed: Error | null }[] = [];
  private readonly local: { Xt: Float32Array; acc: (Accumulators & { rows: number[]; cols: number[] }) | null } | null;

  constructor(
    readonly E: number,
    readonly cap: number,
    threads: number,
  ) {
    this.Ep = Math.ceil(E / 4) * 4;
    this.f16 = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) this.f16[h] = f16ToF32(h);
    const shared = threads > 1;
    this.slots = shared
      ? [new SharedArrayBuffer(E * cap * 4), new SharedArrayBuffer(E * cap * 4)]
      : [new ArrayBuffer(E * cap * 4), new ArrayBuffer(E * cap * 4)];
    if (!shared) {
      this.local = { Xt: new Float32Array(this.Ep * TILE_STRIDE), acc: null };
      return;
    }
    this.local = null;
    const source = workerSource();
    for (let w = 0; w < threads; w++) {
      const worker = new Worker(source, {
        eval: true,
        workerData: { E, Ep: this.Ep, cap, stride: TILE_STRIDE, tile: TILE, le: LITTLE_ENDIAN, f16: this.f16, slots: this.slots },
      });
      const entry = { worker, pending: null as (typeof this.workers)[number]['pending'], failed: null as Error | null };
      const fail = (e: Error) => {
        entry.failed = e;
        entry.pending?.reject(e);
        entry.pending = null;
      };
      worker.on('message', (m: { t: string; message?: string }) => {
        if (m.t === 'error') return fail(new Error(`weight analysis worker: ${m.message}`));
        const p = entry.pending;
        entry.pending = null;
        p?.resolve(m);
      });
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`weight analysis worker exited (code ${code})`)));
      this.workers.push(entry);
    }
  }

  private send(w: number, message: unknown): Promise<unknown> {
    const entry = this.workers[w];
    if (entry.failed) return Promise.reject(entry.failed);
    return new Promise((resolve, reject) => {
      entry.pending = { resolve, reject };
      entry.worker.postMessage(message);
    });
  }

  async process(job: RangeJob): Promise<void> {
    if (this.local) {
      const acc = this.localAccumulators();
      acc.rows[job.kind] = job.rows;
      acc.cols[job.kind] = job.cols;
      const { gram, rowSums, colSums } = ensureAccumulators(acc, job.kind, this.E, this.Ep, job.rows, job.cols);
      processRange(
        this.slots[job.slot],
        this.cap,
        this.E,
        this.Ep,
        job.dtypes,
        0,
        job.len,
        job.chunkStart,
        job.rows,
        job.cols,
        this.local.Xt,
        TILE_STRIDE,
        TILE,
        this.f16,
        LITTLE_ENDIAN,
        gram,
        rowSums,
        colSums,
      );
      return;
    }
    const tiles = Math.ceil(job.len / TILE);
    const per = Math.ceil(tiles / this.workers.length);
    const runs: Promise<unknown>[] = [];
    for (let w = 0; w < this.workers.length; w++) {
      const from = w * per * TILE;
      const to = Math.min(job.len, (w + 1) * per * TILE);
      if (from < to) runs.push(this.send(w, { t: 'range', ...job, from, to }));
    }
    await Promise.all(runs);
  }

  private localAccumulators(): Accumulators & { rows: number[]; cols: number[] } {
    if (!this.local!.acc) this.local!.acc = { gram: [], rowSums: [], colSums: [], rows: [], cols: [] };
    return this.local!.acc;
  }

  /** Sums of every thread's accumulators for the layer just streamed; resets them for the next layer. */
  async collect(shapes: number[][]): Promise<Accumulators> {
    const total: Accumulators = {
      gram: shapes.map(() => new Float64Array(this.Ep * this.Ep)),
      rowSums: shapes.map(([r]) => new Float64Array(this.E * r)),
      colSums: shapes.map(([, c]) => new Float64Array(this.E * c)),
    };
    const parts: Partial<Accumulators>[] = [];
    if (this.local) {
      if (this.local.acc) parts.push(this.local.acc);
      this.local.acc = null;
    } else {
      for (let w = 0; w < this.workers.length; w++) parts.push((await this.send(w, { t: 'collect' })) as Partial<Accumulators>);
    }
    for (const p of parts) {
      for (let k = 0; k < shapes.length; k++) {
        addInto(total.gram[k], p.gram?.[k]);
        addInto(total.rowSums[k], p.rowSums?.[k]);
        addInto(total.colSums[k], p.colSums?.[k]);
      }
    }
    return {
      gram: total.gram.map((g) => compact(g, this.Ep, this.E)),
      rowSums: total.rowSums,
      colSums: total.colSums,
    };
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(async (entry) => {
        entry.failed = new Error('weight analysis worker pool closed');
        await entry.worker.terminate();
      }),
    );
  }
}

function addInto(target: Float64Array, part: Float64Array | null | undefined): void {
  if (!part) return;
  for (let i = 0; i < target.length; i++) target[i] += part[i];
}

function ensureAccumulators(
  acc: Accumulators,
  kind: number,
  E: number,
  Ep: number,
  rows: number,
  cols: number,
): { gram: Float64Array; rowSums: Float64Array; colSums: Float64Array } {
  if (!acc.gram[kind]) {
    acc.gram[kind] = new Float64Array(Ep * Ep);
    acc.rowSums[kind] = new Float64Array(E * rows);
    acc.colSums[kind] = new Float64Array(E * cols);
  }
  return { gram: acc.gram[kind], rowSums: acc.rowSums[kind], colSums: acc.colSums[kind] };
}

const LITTLE_ENDIAN = os.endianness() === 'LE';
