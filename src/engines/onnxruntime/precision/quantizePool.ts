/**
 * Block quantisation on worker threads, for the int8 / int4 cache build: the calling thread reads the
 * checkpoint and appends the codes to the cache files (I/O), the workers check and quantise (CPU). On
 * OLMoE-1B-7B the quantisation loop sees 6.4 billion expert weights; on one thread it was most of a
 * first build's time.
 *
 * Results come back in the order jobs were submitted, so the files are written exactly as the
 * single-threaded build wrote them. With one thread the same functions run on the calling thread.
 */
import { Worker, type MessagePort } from 'node:worker_threads';
import { quantizeBlocks, quantizeBlock8, quantizeBlock4, quantizeBf16, blockMax, round4, type QuantBits, type QuantizedMatrix } from './quantize';
import { firstNonFinite } from '../formats/dtypes';

export interface QuantizeJob {
  /**
   * [rows, K] row-major: float32, or bfloat16 bit patterns (decoded on the worker, block by block); its
   * buffer is handed to the worker (the caller must not reuse it).
   */
  values: Float32Array | Uint16Array;
  rows: number;
  K: number;
  bits: QuantBits;
  /** The block size of this matrix's scales. */
  block: number;
}

export type QuantizeOutcome = { results: QuantizedMatrix[] } | { nonFinite: { part: number; index: number; value: number } };

interface Reply {
  id: number;
  results?: QuantizedMatrix[];
  nonFinite?: { part: number; index: number; value: number };
  error?: string;
}

export class QuantizePool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (r: QuantizeOutcome) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private failed: Error | null = null;

  constructor(threads: number) {
    if (threads <= 1) return;
    const source = `${[quantizeBlocks, quantizeBlock8, quantizeBlock4, quantizeBf16, blockMax, round4, firstNonFinite, quantizeParts, quantizeWorker].map((f) => f.toString()).join('\n')}
const { parentPort } = require('node:worker_threads');
${quantizeWorker.name}(parentPort);
`;
    for (let w = 0; w < threads; w++) {
      const worker = new Worker(source, { eval: true });
      worker.on('message', (m: Reply) => this.settle(m));
      worker.on('error', (e) => this.fail(new Error(`quantisation worker: ${e.message}`)));
      worker.on('exit', (code) => this.fail(new Error(`quantisation worker exited (code ${code})`)));
      this.workers.push(worker);
    }
  }

  /** Checks every part for non-finite values, then quantises them; jobs go to the workers in turn. */
  quantize(parts: QuantizeJob[]): Promise<QuantizeOutcome> {
    if (this.workers.length === 0) return Promise.resolve(quantizeParts(parts));
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[id % this.workers.length].postMessage(
        { id, parts },
        parts.map((p) => p.values.buffer as ArrayBuffer),
      );
    });
  }

  private settle(m: Reply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.error) p.reject(new Error(`quantisation worker: ${m.error}`));
    else p.resolve(m.nonFinite ? { nonFinite: m.nonFinite } : { results: m.results! });
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.fail(new Error('quantisation pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** An array that owns its whole buffer (so that handing the buffer to a worker hands over only it). */
export function owned<T extends Float32Array | Uint16Array>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

function quantizeParts(parts: QuantizeJob[]): QuantizeOutcome {
  const results: QuantizedMatrix[] = [];
  for (let i = 0; i < parts.length; i++) {
    const { values, rows, K, bits, block } = parts[i];
    const n = rows * K;
    const packed = new Uint8Array((n * bits) / 8);
    const scales = new Float32Array(n / block);
    if (values instanceof Uint16Array) {
      const bad = quantizeBf16(values, block, bits, packed, scales);
      if (bad >= 0) return { nonFinite: { part: i, index: bad, value: new Float32Array(Uint32Array.of(values[bad] << 16).buffer)[0] } };
    } else {
      const bad = firstNonFinite(values);
      if (bad >= 0) return { nonFinite: { part: i, index: bad, value: values[bad] } };
      quantizeBlocks(values, 0, n, block, bits, packed, 0, scales, 0);
    }
    results.push({ packed, scales });
  }
  return { results };
}

/** A worker's message loop (self-contained: it runs from its source text). */
function quantizeWorker(port: MessagePort): void {
  port.on('message', (m: { id: number; parts: QuantizeJob[] }) => {
    try {
      const out = quantizeParts(m.parts);
      if ('nonFinite' in out) port.postMessage({ id: m.id, nonFinite: out.nonFinite });
      else
        port.postMessage(
          { id: m.id, results: out.results },
          out.results.flatMap((r) => [r.packed.buffer as ArrayBuffer, r.scales.buffer as ArrayBuffer]),
        );
    } catch (e) {
      port.postMessage({ id: m.id, error: (e as Error).message });
    }
  });
}
