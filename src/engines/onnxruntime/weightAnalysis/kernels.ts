/*
 * The numeric kernels: decode a tile of every expert, add it to the row/column sums and the Gram matrix;
 * then Gram matrices to cosines. The worker's part is self-contained so it can run from its source text.
 */
import type { MessagePort } from 'node:worker_threads';

/** Values per tile: the tile of all 64 experts (~0.5 MB as float32) stays in L2 while it is used. */
export const TILE = 2048;
/** Row stride of a tile: a power-of-two stride maps the rows of a block onto the same cache sets. */
export const TILE_STRIDE = TILE + 16;

export interface RangeJob {
  slot: number;
  kind: number;
  /** DTYPE_CODE of each expert's tensor. */
  dtypes: number[];
  /** Index of the chunk's first value in the flattened matrix. */
  chunkStart: number;
  len: number;
  rows: number;
  cols: number;
}

/**
 * Workers are started from source text (the kernels' own text) rather than a file: the module is bundled
 * into several entry points (extension host, inference process, CLI, tests) and none of them may be
 * re-executed as a worker. Everything listed here must therefore be self-contained: no imports, no
 * module-level constants.
 */
export function workerSource(): string {
  const fns = [gramTile, accumulateMeans, processRange, kernelWorker];
  return `${fns.map((f) => f.toString()).join('\n')}\nconst { parentPort, workerData } = require('node:worker_threads');\n${kernelWorker.name}(parentPort, workerData);\n`;
}

export interface WorkerInit {
  E: number;
  Ep: number;
  cap: number;
  stride: number;
  tile: number;
  le: boolean;
  f16: Float32Array;
  slots: SharedArrayBuffer[];
}

/** A worker's message loop (self-contained: runs from its source text). */
function kernelWorker(port: MessagePort, init: WorkerInit): void {
  const Xt = new Float32Array(init.Ep * init.stride);
  let acc: { gram: Float64Array[]; rowSums: Float64Array[]; colSums: Float64Array[] } = { gram: [], rowSums: [], colSums: [] };
  port.on('message', (m: RangeJob & { t: string; from: number; to: number }) => {
    try {
      if (m.t === 'range') {
        if (!acc.gram[m.kind]) {
          acc.gram[m.kind] = new Float64Array(init.Ep * init.Ep);
          acc.rowSums[m.kind] = new Float64Array(init.E * m.rows);
          acc.colSums[m.kind] = new Float64Array(init.E * m.cols);
        }
        processRange(
          init.slots[m.slot],
          init.cap,
          init.E,
          init.Ep,
          m.dtypes,
          m.from,
          m.to,
          m.chunkStart,
          m.rows,
          m.cols,
          Xt,
          init.stride,
          init.tile,
          init.f16,
          init.le,
          acc.gram[m.kind],
          acc.rowSums[m.kind],
          acc.colSums[m.kind],
        );
        port.postMessage({ t: 'done' });
      } else if (m.t === 'collect') {
        port.postMessage({ t: 'acc', gram: acc.gram, rowSums: acc.rowSums, colSums: acc.colSums });
        acc = { gram: [], rowSums: [], colSums: [] };
      }
    } catch (e) {
      port.postMessage({ t: 'error', message: String((e as Error)?.stack ?? e) });
    }
  });
}

/**
 * Values [from, to) of the chunk in `raw` (expert e's bytes at e * cap * 4), tile by tile: decode the tile
 * of every expert into Xt, add it to the row/column sums and to the Gram matrix. Self-contained (workers
 * run it from its source text).
 */
export function processRange(
  raw: ArrayBufferLike,
  cap: number,
  E: number,
  Ep: number,
  dtypes: number[],
  from: number,
  to: number,
  chunkStart: number,
  rows: number,
  cols: number,
  Xt: Float32Array,
  stride: number,
  tile: number,
  f16: Float32Array,
  le: boolean,
  G: Float64Array,
  rowSum: Float64Array,
  colSum: Float64Array,
): void {
  const f32 = new Float32Array(raw, 0, E * cap);
  const u16 = new Uint16Array(raw, 0, E * cap * 2);
  const bits = new Int32Array(Xt.buffer, Xt.byteOffset, Xt.length);
  const view = le ? null : new DataView(raw);
  for (let t0 = from; t0 < to; t0 += tile) {
    const n = Math.min(tile, to - t0);
    for (let e = 0; e < E; e++) {
      const dt = dtypes[e];
      const d = e * stride;
      if (view) {
        // Big-endian host: the files are little-endian whatever the machine.
        for (let i = 0; i < n; i++) {
          if (dt === 0) Xt[d + i] = view.getFloat32((e * cap + t0 + i) * 4, true);
          else if (dt === 1) bits[d + i] = view.getUint16((e * cap * 2 + t0 + i) * 2, true) << 16;
          else Xt[d + i] = f16[view.getUint16((e * cap * 2 + t0 + i) * 2, true)];
        }
      } else if (dt === 0) {
        Xt.set(f32.subarray(e * cap + t0, e * cap + t0 + n), d);
      } else if (dt === 1) {
        // bfloat16 is the upper half of a float32: shifting the bits is the exact conversion.
        const s = e * cap * 2 + t0;
        for (let i = 0; i < n; i++) bits[d + i] = u16[s + i] << 16;
      } else {
        const s = e * cap * 2 + t0;
        for (let i = 0; i < n; i++) Xt[d + i] = f16[u16[s + i]];
      }
    }
    accumulateMeans(Xt, stride, E, chunkStart + t0, n, rows, cols, rowSum, colSum);
    gramTile(Xt, stride, Ep, G, 0, n);
  }
}

/**
 * G[i, j] += Σ_{k0 <= k < k1} X[i, k] X[j, k] for the upper triangle of 4 x 4 expert blocks. A 4 x 4 block
 * reuses each loaded value four times with 16 float64 accumulators, which measured ~1.5x faster than 1 x 4
 * or 2 x 4 blocks in V8. Float32 inputs are multiplied in float64, where their products are exact.
 */
function gramTile(X: Float32Array, stride: number, Ep: number, G: Float64Array, k0: number, k1: number): void {
  for (let i = 0; i < Ep; i += 4) {
    const a0 = i * stride;
    const a1 = a0 + stride;
    const a2 = a1 + stride;
    const a3 = a2 + stride;
    for (let j = i; j < Ep; j += 4) {
      const b0 = j * stride;
      const b1 = b0 + stride;
      const b2 = b1 + stride;
      const b3 = b2 + stride;
      let s00 = 0,
        s01 = 0,
        s02 = 0,
        s03 = 0;
      let s10 = 0,
        s11 = 0,
        s12 = 0,
        s13 = 0;
      let s20 = 0,
        s21 = 0,
        s22 = 0,
        s23 = 0;
      let s30 = 0,
        s31 = 0,
        s32 = 0,
        s33 = 0;
      for (let k = k0; k < k1; k++) {
        const x0 = X[a0 + k],
          x1 = X[a1 + k],
          x2 = X[a2 + k],
          x3 = X[a3 + k];
        const y0 = X[b0 + k],
          y1 = X[b1 + k],
          y2 = X[b2 + k],
          y3 = X[b3 + k];
        s00 += x0 * y0;
        s01 += x0 * y1;
        s02 += x0 * y2;
        s03 += x0 * y3;
        s10 += x1 * y0;
        s11 += x1 * y1;
        s12 += x1 * y2;
        s13 += x1 * y3;
        s20 += x2 * y0;
        s21 += x2 * y1;
        s22 += x2 * y2;
        s23 += x2 * y3;
        s30 += x3 * y0;
        s31 += x3 * y1;
        s32 += x3 * y2;
        s33 += x3 * y3;
      }
      let g = i * Ep + j;
      G[g] += s00;
      G[g + 1] += s01;
      G[g + 2] += s02;
      G[g + 3] += s03;
      g += Ep;
      G[g] += s10;
      G[g + 1] += s11;
      G[g + 2] += s12;
      G[g + 3] += s13;
      g += Ep;
      G[g] += s20;
      G[g + 1] += s21;
      G[g + 2] += s22;
      G[g + 3] += s23;
      g += Ep;
      G[g] += s30;
      G[g + 1] += s31;
      G[g + 2] += s32;
      G[g + 3] += s33;
    }
  }
}

/**
 * Adds values [start, start + len) of each expert's flattened [rows, cols] matrix (row e of X, stride
 * `stride`) to its row and column sums. Self-contained (workers run it from its source text).
 */
function accumulateMeans(
  X: Float32Array,
  stride: number,
  E: number,
  start: number,
  len: number,
  rows: number,
  cols: number,
  rowSum: Float64Array,
  colSum: Float64Array,
): void {
  for (let e = 0; e < E; e++) {
    let q = 0;
    let r = Math.floor(start / cols);
    let c = start - r * cols;
    const xb = e * stride;
    while (q < len) {
      const n = Math.min(len - q, cols - c);
      const xo = xb + q;
      const co = e * cols + c;
      let s = 0;
      for (let t = 0; t < n; t++) {
        const v = X[xo + t];
        s += v;
        colSum[co + t] += v;
      }
      rowSum[e * rows + r] += s;
      q += n;
      r++;
      c = 0;
    }
  }
}

/** Upper-triangle accumulator of size Ep x Ep -> full symmetric E x E. */
export function compact(g: Float64Array, Ep: number, E: number): Float64Array {
  const out = new Float64Array(E * E);
  for (let i = 0; i < E; i++) {
    for (let j = i; j < E; j++) {
      const v = g[i * Ep + j];
      out[i * E + j] = v;
      out[j * E + i] = v;
    }
  }
  return out;
}

/** Gram matrix of the n rows (length d) of a row-major matrix. */
export function gramOfRows(m: ArrayLike<number>, n: number, d: number): Float64Array {
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      const a = i * d;
      const b = j * d;
      for (let k = 0; k < d; k++) s += m[a + k] * m[b + k];
      g[i * n + j] = s;
      g[j * n + i] = s;
    }
  }
  return g;
}

export function cosineFromGram(g: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const d = Math.sqrt(g[i * n + i] * g[j * n + j]);
      // Rounding can push |cos| of (near-)parallel vectors a hair past 1.
      out[i * n + j] = d > 0 ? Math.max(-1, Math.min(1, g[i * n + j] / d)) : 0;
    }
  }
  return out;
}
