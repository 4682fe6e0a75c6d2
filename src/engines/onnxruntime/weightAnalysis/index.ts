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
 *
 * Files: reader.ts (where the matrices lie, streamed chunk reads), kernels.ts (decode, sums, Gram, cosines;
 * the worker's self-contained code), pool.ts (worker threads), cache.ts (finished layers per checkpoint),
 * this file (one layer's analysis from the accumulators). The pair statistics are src/analysis/pairStats.ts.
 */
import { moeLayersOf } from '../familyFeatures';
import * as path from 'node:path';
import type { Checkpoint } from '../checkpoint';
import { EngineFailure, type LayerWeightSimilarity, type NeuronMeanSimilarity, type WeightAnalysis, type WeightDepthSummary } from '../../../shared/protocol';
import { summarizeByDepth } from '../../../analysis/weightDepth';
import { absMeanOverRms } from '../../../analysis/expertScores';
import { meanOffDiagonal, pairRegression } from '../../../analysis/pairStats';
import { checkpointKey, readCache, writeCache } from './cache';
import { cosineFromGram, gramOfRows } from './kernels';
import { defaultThreads, KernelPool } from './pool';
import { ChunkReader, DTYPE_CODE, expertStreams, KINDS, type ExpertMatrixKind } from './reader';

export { summarizeByDepth };
export { checkpointKey, WEIGHT_ANALYSIS_VERSION } from './cache';
export type { ExpertMatrixKind };

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

/** Raw bytes per chunk buffer (two are in use: one being read, one being processed). */
const CHUNK_BUDGET_BYTES = 32 * 1024 * 1024;

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
  // The weights-only pruning criterion: every weight's sum is the sum of its matrix's row sums.
  let elements = 0;
  const weightSums = new Array<number>(E).fill(0);
  const weightSquares = new Array<number>(E).fill(0);
  for (const k of KINDS) {
    const rows = streams[k].rows;
    elements += rows * streams[k].cols;
    for (let e = 0; e < E; e++) {
      for (let r = 0; r < rows; r++) weightSums[e] += rowSums[k][e * rows + r];
      weightSquares[e] += G[k][e * E + e];
    }
  }

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
    absMeanOverRms: absMeanOverRms(weightSums, weightSquares, elements),
  };
}
// ---------------------------------------------------------------------------------------------------
// Arguments, cancellation, cache

/** Layers are decoder layers; only MoE layers have experts to analyse (all of them by default). */
function resolveLayers(ckpt: Checkpoint, layers: number[] | undefined): number[] {
  const L = ckpt.arch.numLayers;
  const moe = moeLayersOf(ckpt.arch);
  if (layers === undefined) return moe;
  const seen = new Set<number>();
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= L) throw new EngineFailure('bad-input', `layer ${l} does not exist: the model has layers 0..${L - 1}`);
    if (!moe.includes(l)) throw new EngineFailure('bad-input', `layer ${l} is a dense layer (no experts); the MoE layers are ${moe.join(', ')}`);
    seen.add(l);
  }
  return [...seen];
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new EngineFailure('cancelled', 'the request was cancelled');
}
