/**
 * Static expert-structure analysis computed from checkpoint weights alone (no forward pass), after
 * "A Closer Look into Mixture-of-Experts in Large Language Models" (Lo et al.).
 *
 * Definitions, per MoE layer with E experts. Every expert has three matrices stored [out, in] row-major:
 * gate = gate_proj / w1 [I, H], up = up_proj / w3 [I, H], down = down_proj / w2 [H, I]. ("gate" always means
 * the expert's gate_proj; the layer's router is called "router".)
 *
 *  - cos(a, b) = a·b / (|a| |b|); defined as 0 when either vector is all zeros (so a zero expert has 0 on
 *    the diagonal too, which flags it instead of pretending it is self-similar).
 *  - gate / up / down: E x E cos between the experts' flattened matrices vec(W) (row-major, I·H values).
 *  - all: cos between the concatenations [vec(gate); vec(up); vec(down)]. Its Gram matrix is the sum of the
 *    three Gram matrices, so a matrix with larger norms weighs more.
 *  - Neuron level, for a matrix W with R rows and C columns:
 *      rowMean[r] = (1/C) Σ_c W[r, c]   (a vector of length R),
 *      colMean[c] = (1/R) Σ_r W[r, c]   (a vector of length C),
 *    and the E x E cos between experts' rowMean (resp. colMean) vectors. For gate_proj (the protocol's
 *    neuronRowMean / neuronColMean) rowMean has one entry per intermediate neuron (the mean of its input
 *    weights) and colMean one entry per hidden input dimension (the mean over the expert's neurons).
 *    up_proj is analogous; for down_proj rows are hidden outputs and columns are neurons.
 *    Caveat worth showing in the UI: the order of neurons inside an expert is arbitrary (permuting gate/up
 *    rows together with down columns leaves the expert's function unchanged), so the flattened and the
 *    per-neuron (gate/up rowMean, down colMean) similarities only mean something when experts share an
 *    origin, e.g. upcycling from one dense FFN; gate/up colMean and down rowMean are permutation-invariant.
 *  - router: E x E cos between rows of the router weight [E, H] (each expert's "gate embedding").
 *  - routerVsExpertR2: ordinary least squares with intercept of y = router cos on x = "all" cos over the
 *    E(E-1)/2 pairs e < f; R^2 = 1 - SS_res / SS_tot (equal to the squared Pearson correlation). Defined as
 *    0 when x or y has no variance (nothing to explain, or no explanatory spread).
 *  - meanOffDiagonal.*: mean over the E(E-1) ordered pairs e != f. The summary by depth is this per-layer
 *    mean as a series over layers.
 *
 * Memory and speed: one layer of OLMoE is 64 x 3 x 2048 x 1024 values (1.6 GB as float32), so a layer is
 * never held at once. For each matrix kind, the flattened vectors of all experts are streamed in aligned
 * chunks of `chunkElements` values: byte ranges read straight from the safetensors files (F32, BF16 or
 * F16; per-expert or packed layout; any sharding), the next chunk being read while the current one is
 * processed. A chunk is processed in tiles of 2048 values per expert: decode the tile of every expert to
 * float32 (~0.5 MB, stays in cache), add it to the row/column sums, and add its Gram matrix
 * G[e, f] += Σ x_e x_f in float64 accumulators. Worker threads take disjoint tile ranges of each chunk
 * with private accumulators that are summed once per layer. Resident memory: two chunk buffers (2 x 32 MB
 * by default), a tile per thread, and E x E results; measured ~100-170 MB at OLMoE's widths
 * (bench/weights.ts).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Worker, type MessagePort } from 'node:worker_threads';
import type { Checkpoint } from './checkpoint';
import { DTYPE_BYTES, f16ToF32, type SafetensorsDType } from './formats/dtypes';
import { EngineFailure, type LayerWeightSimilarity, type NeuronMeanSimilarity, type WeightAnalysis, type WeightDepthSummary } from '../shared/protocol';
import { summarizeByDepth } from '../analysis/weightDepth';
import { meanOffDiagonal, pairRegression } from '../analysis/pairStats';

export { summarizeByDepth };

export type ExpertMatrixKind = 'gate' | 'up' | 'down';
const KINDS: readonly ExpertMatrixKind[] = ['gate', 'up', 'down'];

// The result types live in the shared protocol; these names stay for the module's readers.
export type { NeuronMeanSimilarity, WeightDepthSummary };
export type LayerWeightAnalysis = LayerWeightSimilarity;
export type CheckpointWeightAnalysis = WeightAnalysis;

export interface WeightAnalysisOptions {
  /** Values per expert per streamed chunk; default: 32 MB of chunk buffer at 4 bytes per value. */
  chunkElements?: number;
  /** Worker threads sharing each chunk; 1 computes on the calling thread. Default: cores (at most 8), 1 for tiny models. */
  threads?: number;
}

/** Bumped whenever a definition or the result shape changes, so cached results are recomputed. */
export const WEIGHT_ANALYSIS_VERSION = 1;

/** Raw bytes per chunk buffer (two are in use: one being read, one being processed). */
const CHUNK_BUDGET_BYTES = 32 * 1024 * 1024;
/** Values per tile: the tile of all 64 experts (~0.5 MB as float32) stays in L2 while it is used. */
const TILE = 2048;
/** Row stride of a tile: a power-of-two stride maps the rows of a block onto the same cache sets. */
const TILE_STRIDE = TILE + 16;

export async function analyzeCheckpointWeights(
  ckpt: Checkpoint,
  layers?: number[],
  signal?: AbortSignal,
  onProgress?: (layer: number) => void,
  options: WeightAnalysisOptions = {},
): Promise<CheckpointWeightAnalysis> {
  const t0 = performance.now();
  const wanted = resolveLayers(ckpt, layers);
  const out: LayerWeightAnalysis[] = [];
  const E = ckpt.arch.numExperts;
  const N = ckpt.arch.hiddenSize * ckpt.arch.expertIntermediate;
  const cap = Math.max(1, Math.min(N, Math.floor(options.chunkElements ?? CHUNK_BUDGET_BYTES / (4 * E))));
  const reader = new ChunkReader();
  // Starting workers costs tens of milliseconds: not worth it for small models.
  const small = 3 * N * E * E < 1 << 26;
  const pool = new KernelPool(E, cap, options.threads ?? (small ? 1 : defaultThreads()));
  try {
    for (const layer of wanted) {
      checkAborted(signal);
      out.push(await analyzeLayer(ckpt, layer, reader, pool, signal));
      onProgress?.(layer);
    }
  } finally {
    await Promise.all([reader.close(), pool.close()]);
  }
  return { modelPath: ckpt.dir, numExperts: E, layers: out, byDepth: summarizeByDepth(out), ms: performance.now() - t0 };
}

function defaultThreads(): number {
  const n = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, n));
}

/**
 * Like analyzeCheckpointWeights, but layers already analysed for this exact checkpoint are read from a
 * JSON file in cacheDir. The key covers config.json's text and every safetensors file's name, size and
 * mtime, so a re-downloaded or edited checkpoint is analysed afresh. Each layer is saved as soon as it is
 * done, so a cancelled run keeps its finished layers. onProgress fires only for layers actually computed.
 */
export async function cachedWeightAnalysis(
  ckpt: Checkpoint,
  cacheDir: string,
  layers?: number[],
  signal?: AbortSignal,
  onProgress?: (layer: number) => void,
  options: WeightAnalysisOptions = {},
): Promise<CheckpointWeightAnalysis> {
  const t0 = performance.now();
  const wanted = resolveLayers(ckpt, layers);
  const key = checkpointKey(ckpt);
  const file = path.join(cacheDir, `weight-analysis-${key.slice(0, 32)}.json`);
  const cached = readCache(file, key, ckpt.arch.numExperts);
  for (const layer of wanted) {
    if (cached.has(layer)) continue;
    const r = await analyzeCheckpointWeights(ckpt, [layer], signal, onProgress, options);
    cached.set(layer, r.layers[0]);
    writeCache(file, key, ckpt.arch.numExperts, cached);
  }
  const result = wanted.map((l) => cached.get(l)!);
  return { modelPath: ckpt.dir, numExperts: ckpt.arch.numExperts, layers: result, byDepth: summarizeByDepth(result), ms: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------------------
// One layer

interface Segment {
  file: string;
  /** Byte offset of the matrix's first value. */
  offset: number;
  dtype: SafetensorsDType;
}

interface MatrixStreams {
  rows: number;
  cols: number;
  /** Where each expert's copy of this matrix starts. */
  experts: Segment[];
}

async function analyzeLayer(
  ckpt: Checkpoint,
  layer: number,
  reader: ChunkReader,
  pool: KernelPool,
  signal: AbortSignal | undefined,
): Promise<LayerWeightAnalysis> {
  const E = ckpt.arch.numExperts;
  const streams = expertStreams(ckpt, layer);
  const N = streams.gate.rows * streams.gate.cols;
  const cap = pool.cap;

  const jobs: { kind: number; start: number; len: number }[] = [];
  for (let kind = 0; kind < KINDS.length; kind++) for (let start = 0; start < N; start += cap) jobs.push({ kind, start, len: Math.min(cap, N - start) });
  const segments = (kind: number) => streams[KINDS[kind]].experts;
  const dtypeCodes = KINDS.map((k) => streams[k].experts.map((s) => DTYPE_CODE[s.dtype as 'F32' | 'BF16' | 'F16']));

  // The next chunk is read on libuv's threads while this one is decoded and multiplied.
  let pending: Promise<void> | null = reader.readChunk(segments(jobs[0].kind), jobs[0].start, jobs[0].len, cap, pool.slots[0]);
  try {
    for (let j = 0; j < jobs.length; j++) {
      await pending;
      pending = null;
      checkAborted(signal);
      if (j + 1 < jobs.length) {
        const nx = jobs[j + 1];
        pending = reader.readChunk(segments(nx.kind), nx.start, nx.len, cap, pool.slots[(j + 1) % 2]);
        // A failure surfaces at the await above; this only keeps it from being reported as unhandled meanwhile.
        pending.catch(() => {});
      }
      const { kind, start, len } = jobs[j];
      await pool.process({
        slot: j % 2,
        kind,
        dtypes: dtypeCodes[kind],
        chunkStart: start,
        len,
        rows: streams[KINDS[kind]].rows,
        cols: streams[KINDS[kind]].cols,
      });
    }
  } finally {
    if (pending) await pending.catch(() => {});
  }

  const acc = await pool.collect(KINDS.map((k) => [streams[k].rows, streams[k].cols]));
  const G: Record<ExpertMatrixKind, Float64Array> = { gate: acc.gram[0], up: acc.gram[1], down: acc.gram[2] };
  const rowSums: Record<ExpertMatrixKind, Float64Array> = { gate: acc.rowSums[0], up: acc.rowSums[1], down: acc.rowSums[2] };
  const colSums: Record<ExpertMatrixKind, Float64Array> = { gate: acc.colSums[0], up: acc.colSums[1], down: acc.colSums[2] };

  const gAll = new Float64Array(E * E);
  for (let i = 0; i < E * E; i++) gAll[i] = G.gate[i] + G.up[i] + G.down[i];

  const routerName = ckpt.names.layer(layer).router;
  const routerW = ckpt.readFloat32(routerName);
  const H = ckpt.arch.hiddenSize;
  if (routerW.length !== E * H)
    throw new EngineFailure('bad-model', `${ckpt.dir}: router "${routerName}" holds ${routerW.length} values, expected ${E} x ${H}`);
  const gRouter = gramOfRows(routerW, E, H);

  const cos = {
    gate: cosineFromGram(G.gate, E),
    up: cosineFromGram(G.up, E),
    down: cosineFromGram(G.down, E),
    all: cosineFromGram(gAll, E),
    router: cosineFromGram(gRouter, E),
  };
  const neuron = {} as Record<ExpertMatrixKind, { row: Float64Array; col: Float64Array }>;
  for (const k of KINDS) {
    // cos is scale-invariant, so the sums stand in for the means.
    neuron[k] = {
      row: cosineFromGram(gramOfRows(rowSums[k], E, streams[k].rows), E),
      col: cosineFromGram(gramOfRows(colSums[k], E, streams[k].cols), E),
    };
  }
  const fit = pairRegression(cos.all, cos.router, E);
  const norms = (g: Float64Array) => Array.from({ length: E }, (_, e) => Math.sqrt(g[e * E + e]));
  const list = (a: Float64Array) => Array.from(a);

  return {
    layer,
    gate: list(cos.gate),
    up: list(cos.up),
    down: list(cos.down),
    all: list(cos.all),
    router: list(cos.router),
    neuronRowMean: list(neuron.gate.row),
    neuronColMean: list(neuron.gate.col),
    routerVsExpertR2: fit.r2,
    meanOffDiagonal: {
      gate: meanOffDiagonal(cos.gate, E, 0),
      up: meanOffDiagonal(cos.up, E, 0),
      down: meanOffDiagonal(cos.down, E, 0),
      all: meanOffDiagonal(cos.all, E, 0),
      router: meanOffDiagonal(cos.router, E, 0),
      neuronRowMean: meanOffDiagonal(neuron.gate.row, E, 0),
      neuronColMean: meanOffDiagonal(neuron.gate.col, E, 0),
    },
    neuronUp: { rowMean: list(neuron.up.row), colMean: list(neuron.up.col) },
    neuronDown: { rowMean: list(neuron.down.row), colMean: list(neuron.down.col) },
    routerVsExpertFit: fit,
    norms: { gate: norms(G.gate), up: norms(G.up), down: norms(G.down), router: norms(gRouter) },
  };
}

function expertStreams(ckpt: Checkpoint, layer: number): Record<ExpertMatrixKind, MatrixStreams> {
  const { hiddenSize: H, expertIntermediate: I, numExperts: E } = ckpt.arch;
  const shapes: Record<ExpertMatrixKind, [number, number]> = { gate: [I, H], up: [I, H], down: [H, I] };
  const out = {} as Record<ExpertMatrixKind, MatrixStreams>;
  for (const k of KINDS) out[k] = { rows: shapes[k][0], cols: shapes[k][1], experts: [] };
  const ln = ckpt.names.layer(layer);
  const floatDType = (name: string, dtype: SafetensorsDType) => {
    if (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16')
      throw new EngineFailure('bad-model', `${ckpt.dir}: tensor "${name}" has dtype ${dtype}; expected F32, BF16 or F16`);
    return dtype;
  };
  if (ckpt.expertLayout === 'per-expert') {
    for (let e = 0; e < E; e++) {
      const names = ln.expert(e);
      for (const k of KINDS) {
        const t = ckpt.tensor(names[k]);
        const numel = t.shape.reduce((a, b) => a * b, 1);
        if (numel !== I * H)
          throw new EngineFailure('bad-model', `${t.file}: tensor "${names[k]}" has shape [${t.shape.join(', ')}], expected ${shapes[k].join(' x ')}`);
        out[k].experts.push({ file: t.file, offset: t.fileOffset, dtype: floatDType(names[k], t.dtype) });
      }
    }
    return out;
  }
  const packed = ln.packed;
  if (!packed) throw new EngineFailure('bad-model', `${ckpt.dir}: packed expert layout without packed tensor names for layer ${layer}`);
  const gu = ckpt.tensor(packed.gateUp);
  const dn = ckpt.tensor(packed.down);
  const guBytes = DTYPE_BYTES[floatDType(packed.gateUp, gu.dtype)];
  const dnBytes = DTYPE_BYTES[floatDType(packed.down, dn.dtype)];
  if (gu.byteLength !== E * 2 * I * H * guBytes || dn.byteLength !== E * H * I * dnBytes) {
    throw new EngineFailure('bad-model', `${ckpt.dir}: packed experts of layer ${layer} do not hold ${E} x (2 x ${I} x ${H}) and ${E} x ${H} x ${I} values`);
  }
  for (let e = 0; e < E; e++) {
    // gate_up_proj[e] is [2I, H] with the gate rows first, then the up rows.
    const base = gu.fileOffset + e * 2 * I * H * guBytes;
    out.gate.experts.push({ file: gu.file, offset: base, dtype: gu.dtype });
    out.up.experts.push({ file: gu.file, offset: base + I * H * guBytes, dtype: gu.dtype });
    out.down.experts.push({ file: dn.file, offset: dn.fileOffset + e * H * I * dnBytes, dtype: dn.dtype });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Streaming reads and decoding

class ChunkReader {
  private handles = new Map<string, Promise<fsp.FileHandle>>();

  private handle(file: string): Promise<fsp.FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = fsp.open(file, 'r');
      this.handles.set(file, h);
    }
    return h;
  }

  /** Reads values [start, start + len) of every expert's matrix into `slot`, expert e at byte e * cap * 4. */
  async readChunk(experts: Segment[], start: number, len: number, cap: number, slot: ArrayBufferLike): Promise<void> {
    await Promise.all(
      experts.map(async (seg, e) => {
        const eb = DTYPE_BYTES[seg.dtype];
        const fh = await this.handle(seg.file);
        const buf = Buffer.from(slot, e * cap * 4, len * eb);
        const position = seg.offset + start * eb;
        let done = 0;
        while (done < buf.length) {
          const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
          if (bytesRead === 0) throw new EngineFailure('bad-model', `${seg.file}: unexpected end of file at offset ${position + done}: the file is truncated`);
          done += bytesRead;
        }
      }),
    );
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(hs.map(async (h) => (await h.catch(() => null))?.close()));
  }
}

const DTYPE_CODE = { F32: 0, BF16: 1, F16: 2 } as const;

interface RangeJob {
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

interface Accumulators {
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
class KernelPool {
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

/**
 * Workers are started from source text (the kernels' own text) rather than a file: the module is bundled
 * into several entry points (extension host, inference process, CLI, tests) and none of them may be
 * re-executed as a worker. Everything listed here must therefore be self-contained: no imports, no
 * module-level constants.
 */
function workerSource(): string {
  const fns = [gramTile, accumulateMeans, processRange, kernelWorker];
  return `${fns.map((f) => f.toString()).join('\n')}\nconst { parentPort, workerData } = require('node:worker_threads');\n${kernelWorker.name}(parentPort, workerData);\n`;
}

interface WorkerInit {
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
function processRange(
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
function compact(g: Float64Array, Ep: number, E: number): Float64Array {
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
function gramOfRows(m: ArrayLike<number>, n: number, d: number): Float64Array {
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

function cosineFromGram(g: Float64Array, n: number): Float64Array {
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

// ---------------------------------------------------------------------------------------------------
// Arguments, cancellation, cache

function resolveLayers(ckpt: Checkpoint, layers: number[] | undefined): number[] {
  const L = ckpt.arch.numLayers;
  if (layers === undefined) return Array.from({ length: L }, (_, i) => i);
  const seen = new Set<number>();
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= L) throw new EngineFailure('bad-input', `layer ${l} does not exist: the model has layers 0..${L - 1}`);
    seen.add(l);
  }
  return [...seen];
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineFailure('cancelled', 'the request was cancelled');
}

export function checkpointKey(ckpt: Checkpoint): string {
  const h = createHash('sha256');
  h.update(`moe-scope weight analysis v${WEIGHT_ANALYSIS_VERSION}\n`);
  h.update(ckpt.configText);
  for (const f of [...ckpt.files].sort((a, b) => a.file.localeCompare(b.file))) {
    const st = fs.statSync(f.file);
    h.update(`\n${path.relative(ckpt.dir, f.file)}\t${st.size}\t${st.mtimeMs}`);
  }
  return h.digest('hex');
}

interface CacheFile {
  version: number;
  key: string;
  numExperts: number;
  layers: LayerWeightAnalysis[];
}

function readCache(file: string, key: string, numExperts: number): Map<number, LayerWeightAnalysis> {
  const out = new Map<number, LayerWeightAnalysis>();
  let data: CacheFile;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8')) as CacheFile;
  } catch {
    // Missing, or torn by a crash mid-write of an older version: either way, recompute.
    return out;
  }
  if (data?.version !== WEIGHT_ANALYSIS_VERSION || data.key !== key || data.numExperts !== numExperts || !Array.isArray(data.layers)) return out;
  const E2 = numExperts * numExperts;
  for (const l of data.layers) {
    if (l && Number.isInteger(l.layer) && Array.isArray(l.all) && l.all.length === E2 && Array.isArray(l.router) && l.router.length === E2) out.set(l.layer, l);
  }
  return out;
}

let cacheWrites = 0;

function writeCache(file: string, key: string, numExperts: number, layers: Map<number, LayerWeightAnalysis>): void {
  const data: CacheFile = { version: WEIGHT_ANALYSIS_VERSION, key, numExperts, layers: [...layers.values()].sort((a, b) => a.layer - b.layer) };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Write-then-rename so a reader (or a crash) never sees half a file.
  const tmp = `${file}.${process.pid}.${++cacheWrites}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data));
  fs.renameSync(tmp, file);
}
