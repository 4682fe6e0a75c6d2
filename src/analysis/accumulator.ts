import { MODEL_LIMITS, type LayerSummary, type RunSummary, type SubjectSummary, type TokenScope } from '../shared/protocol';
import { analysisDefinitions } from './definitions';
import { isTokenScope, scopeRange, tokenScopeDefinition } from './scope';
import { decodeCounts, encodeCounts, encodeNonZeroCounts } from './sparse';
import {
  addExpertScores,
  checkExpertNorms,
  cloneExpertScores,
  createExpertScoreSums,
  EXPERT_SCORE_DEFINITIONS,
  expertScoresFromDelta,
  expertScoresToDelta,
  mergeExpertScores,
  summarizeExpertScores,
  type ExpertScoresDelta,
  type ExpertScoreSums,
} from './expertScores';
import type { RoutingRecord } from './types';

/*
 * Dataset-wide routing statistics, folded one question at a time.
 *
 * A full MMLU run routes ~14k questions x ~600 tokens x 16 layers x top-8, far too much to keep, so the
 * runner folds every RoutingRecord into a RunAccumulator (addRecord), persists a compact delta per batch
 * of questions (encodeDelta), and sums the decoded deltas in any order (mergeAccumulators, associative and
 * commutative) before summarizing. Everything here is a pure function over plain data; addRecord and
 * mergeInto mutate the accumulator they are given and nothing else.
 *
 * The accumulator holds sums only, never ratios, so merging is plain addition. Integer counts merge
 * exactly; the three floating-point sums (entropy, top-1 weight, top-k mass) merge up to rounding.
 */

export const DEFAULT_ENTROPY_BINS = 1000;

const MAX_LAYERS = MODEL_LIMITS.maxLayers;
const MAX_EXPERTS = MODEL_LIMITS.maxExperts;
const MAX_ENTROPY_BINS = 100_000;
const MAX_PAIR_CELLS = 1 << 24;

export interface AccumulatorShape {
  numLayers: number;
  numExperts: number;
  topK: number;
}

export interface SubjectAccumulator {
  subject: string;
  questions: number;
  correct: number;
  /** [layer][expert] -> layer * E + expert: in-scope (token, slot) assignments of this subject's questions. */
  assignments: number[];
}

/**
 * Plain JSON-serialisable running sums for one model shape and one token scope. Arrays indexed
 * [layer][expert] are flattened as layer * E + expert.
 */
export interface RunAccumulator extends AccumulatorShape {
  format: 'moe-scope.run-accumulator';
  version: 1;
  scope: TokenScope;
  /** Bins of the normalised-entropy histogram over [0, 1]; fixes the quantile resolution to 1 / entropyBins. */
  entropyBins: number;
  questions: number;
  correct: number;
  /** In-scope tokens over all questions (each token once, the same in every layer). */
  scopeTokens: number;
  /** [layer]: sum over in-scope tokens of entropy / ln(E). */
  entropySum: number[];
  /** [layer][bin] -> layer * entropyBins + bin: in-scope tokens whose entropy / ln(E) falls in the bin. */
  entropyHist: number[];
  /** [layer]: sum over in-scope tokens of the largest applied expert weight. */
  top1Sum: number[];
  /** [layer]: sum over in-scope tokens of the sum of the k applied expert weights. */
  topKMassSum: number[];
  /** [layer][expert]: questions whose answer-position top-k contains the expert (independent of scope). */
  answerUse: number[];
  /** [layer][expert]: of those, questions answered correctly. */
  answerCorrect: number[];
  /** [layer][expert]: in-scope (token, slot) assignments that belong to correctly answered questions. */
  activationCorrect: number[];
  /**
   * [layer][a][b] -> (layer * E + a) * E + b: in-scope tokens whose top-k contains both a and b (a != b).
   * Symmetric with a zero diagonal. Kept as a full matrix although half of it is redundant, because
   * incrementing both (a, b) and (b, a) is cheaper in the hot loop than ordering each pair (a
   * data-dependent branch, 28 times per token and layer); deltas store the upper triangle only.
   */
  pairs: number[];
  /**
   * Per subject, in first-seen order. The global activation counts are the sum over subjects, so they are
   * not stored twice. An array rather than a record so that no subject name can collide with an
   * Object.prototype key.
   */
  subjects: SubjectAccumulator[];
  /** Gate-weighted counts and output-norm sums per [layer][expert] (expertScores.ts). */
  expertScores: ExpertScoreSums;
}

export interface AccumulatorOptions {
  entropyBins?: number;
  /**
   * Remember which pair cells are non-zero, so that clearing, merging and encoding cost what was added
   * rather than L x E^2 each time: for a per-batch accumulator, whose batch touches a few thousand cells.
   */
  trackPairCells?: boolean;
}

/** The non-zero pair cells of accumulators created with trackPairCells (each cell once, in no order). */
const pairCells = new WeakMap<RunAccumulator, number[]>();

function checkShape(shape: AccumulatorShape, bins: number): void {
  const { numLayers: L, numExperts: E, topK: K } = shape;
  if (!Number.isInteger(L) || L < 1 || L > MAX_LAYERS) throw new Error(`numLayers must be an integer in [1, ${MAX_LAYERS}], got ${L}`);
  // ln(1) = 0 would make normalised entropy undefined.
  if (!Number.isInteger(E) || E < 2 || E > MAX_EXPERTS) throw new Error(`numExperts must be an integer in [2, ${MAX_EXPERTS}], got ${E}`);
  if (!Number.isInteger(K) || K < 1 || K > E) throw new Error(`topK must be an integer in [1, numExperts], got ${K}`);
  if (!Number.isInteger(bins) || bins < 1 || bins > MAX_ENTROPY_BINS)
    throw new Error(`entropyBins must be an integer in [1, ${MAX_ENTROPY_BINS}], got ${bins}`);
  // Shapes come from delta files too; refuse before allocating the pair matrices.
  if (L * E * E > MAX_PAIR_CELLS) throw new Error(`${L} layers x ${E}^2 expert pairs exceed ${MAX_PAIR_CELLS} cells`);
}

function zeros(n: number): number[] {
  return new Array<number>(n).fill(0);
}

/** An empty accumulator for one model shape and token scope. */
export function createAccumulator(shape: AccumulatorShape, scope: TokenScope, options: AccumulatorOptions = {}): RunAccumulator {
  const bins = options.entropyBins ?? DEFAULT_ENTROPY_BINS;
  checkShape(shape, bins);
  if (!isTokenScope(scope)) throw new Error(`unknown token scope ${String(scope)}`);
  const { numLayers: L, numExperts: E, topK: K } = shape;
  const acc: RunAccumulator = {
    format: 'moe-scope.run-accumulator',
    version: 1,
    numLayers: L,
    numExperts: E,
    topK: K,
    scope,
    entropyBins: bins,
    questions: 0,
    correct: 0,
    scopeTokens: 0,
    entropySum: zeros(L),
    entropyHist: zeros(L * bins),
    top1Sum: zeros(L),
    topKMassSum: zeros(L),
    answerUse: zeros(L * E),
    answerCorrect: zeros(L * E),
    activationCorrect: zeros(L * E),
    pairs: zeros(L * E * E),
    subjects: [],
    expertScores: createExpertScoreSums(L * E),
  };
  if (options.trackPairCells) pairCells.set(acc, []);
  return acc;
}

/** Empties an accumulator in place: a per-batch accumulator reused batch after batch allocates nothing. */
export function clearAccumulator(acc: RunAccumulator): void {
  acc.questions = 0;
  acc.correct = 0;
  acc.scopeTokens = 0;
  for (const a of [acc.entropySum, acc.entropyHist, acc.top1Sum, acc.topKMassSum, acc.answerUse, acc.answerCorrect, acc.activationCorrect]) a.fill(0);
  const cells = pairCells.get(acc);
  if (cells) {
    for (const i of cells) acc.pairs[i] = 0;
    cells.length = 0;
  } else {
    acc.pairs.fill(0);
  }
  for (const a of [acc.expertScores.gateWeightSum, acc.expertScores.normSum, acc.expertScores.normSqSum, acc.expertScores.normCount]) a.fill(0);
  acc.subjects = [];
}

// ---------------------------------------------------------------------------------------------------
// Folding one question

// Scratch reused across calls so that addRecord allocates nothing per token (and almost nothing per
// question). Grow-only; contents are meaningless between calls.
let questionCounts = new Int32Array(0);
let seenStamp = new Int32Array(0);
let stamp = 0;
let layerSums = new Float64Array(0);
let slotExperts = new Int32Array(0);

function ensureScratch(L: number, E: number, K: number): void {
  if (questionCounts.length < L * E) questionCounts = new Int32Array(L * E);
  if (layerSums.length < 3 * L) layerSums = new Float64Array(3 * L);
  if (seenStamp.length < E) {
    seenStamp = new Int32Array(E);
    stamp = 0;
  }
  if (slotExperts.length < K) slotExperts = new Int32Array(K);
}

function nextStamp(): number {
  if (stamp >= 0x3fffffff) {
    seenStamp.fill(0);
    stamp = 0;
  }
  return ++stamp;
}

function checkRecordShape(acc: RunAccumulator, r: RoutingRecord): void {
  const id = `record ${String(r.questionId)}`;
  if (r.numLayers !== acc.numLayers || r.numExperts !== acc.numExperts || r.topK !== acc.topK) {
    throw new Error(
      `${id}: shape ${r.numLayers}x${r.numExperts} top-${r.topK} does not match the accumulator's ` + `${acc.numLayers}x${acc.numExperts} top-${acc.topK}`,
    );
  }
  if (typeof r.subject !== 'string') throw new Error(`${id}: subject must be a string`);
  if (typeof r.correct !== 'boolean') throw new Error(`${id}: correct must be a boolean`);
  const slots = r.numLayers * r.numTokens * r.topK;
  if (r.topExperts.length !== slots) throw new Error(`${id}: topExperts has ${r.topExperts.length} values, expected ${slots}`);
  if (r.topWeights.length !== slots) throw new Error(`${id}: topWeights has ${r.topWeights.length} values, expected ${slots}`);
  if (r.entropy.length !== r.numLayers * r.numTokens) {
    throw new Error(`${id}: entropy has ${r.entropy.length} values, expected ${r.numLayers * r.numTokens}`);
  }
}

function subjectEntry(acc: RunAccumulator, subject: string): SubjectAccumulator {
  const list = acc.subjects;
  for (let i = list.length - 1; i >= 0; i--) if (list[i]!.subject === subject) return list[i]!;
  const entry: SubjectAccumulator = { subject, questions: 0, correct: 0, assignments: zeros(acc.numLayers * acc.numExperts) };
  list.push(entry);
  return entry;
}

/**
 * Folds one evaluated question into acc. Over the in-scope tokens (see scope.ts) of every layer it adds:
 * the normalised entropy (sum and histogram bin), the largest applied weight, the sum of the k applied
 * weights, one assignment per (token, slot) to the chosen expert (credited to the record's subject, and
 * to activationCorrect when the question was answered correctly), and one co-activation count to both
 * orders of every pair of the token's k chosen experts. Independently of the scope, the answer position's k experts per layer
 * are counted in answerUse (and answerCorrect). The record is validated first: an invalid record throws
 * and leaves acc unchanged.
 */
export function addRecord(acc: RunAccumulator, record: RoutingRecord): void {
  checkRecordShape(acc, record);
  checkExpertNorms(record);
  const L = acc.numLayers;
  const E = acc.numExperts;
  const K = acc.topK;
  const T = record.numTokens;
  const [start, end] = scopeRange(record, acc.scope);
  const answer = record.answerToken;
  const experts = record.topExperts;
  const weights = record.topWeights;
  const entropy = record.entropy;
  const correct = record.correct;
  const lnE = Math.log(E);
  ensureScratch(L, E, K);
  const counts = questionCounts;
  const sums = layerSums;
  const seen = seenStamp;
  counts.fill(0, 0, L * E);

  // Pass 1 reads and checks everything but writes only scratch: per-question expert counts and per-layer
  // sums. An invalid record therefore throws before acc is touched.
  for (let l = 0; l < L; l++) {
    let hSum = 0;
    let top1 = 0;
    let mass = 0;
    const countOff = l * E;
    for (let t = start; t < end; t++) {
      const h = entropy[l * T + t]!;
      if (!Number.isFinite(h)) throw new Error(`record ${record.questionId}: entropy of layer ${l} token ${t} is not finite`);
      hSum += h;
      const base = (l * T + t) * K;
      const s = nextStamp();
      let wMax = -Infinity;
      let wSum = 0;
      for (let slot = 0; slot < K; slot++) {
        const e = experts[base + slot]!;
        if (!((e | 0) === e && e >= 0 && e < E)) throw badExpert(record, l, t, slot, e, E);
        if (seen[e] === s) throw new Error(`record ${record.questionId}: expert ${e} chosen twice at layer ${l} token ${t}`);
        seen[e] = s;
        counts[countOff + e]!++;
        const w = weights[base + slot]!;
        if (!Number.isFinite(w)) throw new Error(`record ${record.questionId}: weight at layer ${l} token ${t} slot ${slot} is not finite`);
        wSum += w;
        if (w > wMax) wMax = w;
      }
      top1 += wMax;
      mass += wSum;
    }
    sums[3 * l] = hSum / lnE;
    sums[3 * l + 1] = top1;
    sums[3 * l + 2] = mass;
    // The answer position is read for answer-position accuracy whatever the scope.
    const answerBase = (l * T + answer) * K;
    for (let slot = 0; slot < K; slot++) {
      const e = experts[answerBase + slot]!;
      if (!((e | 0) === e && e >= 0 && e < E)) throw badExpert(record, l, answer, slot, e, E);
    }
  }

  // Pass 2 cannot throw.
  const bins = acc.entropyBins;
  const hist = acc.entropyHist;
  const pairs = acc.pairs;
  const cells = pairCells.get(acc);
  const chosen = slotExperts;
  for (let l = 0; l < L; l++) {
    const histOff = l * bins;
    const layerOff = l * E;
    const pairOff = l * E * E;
    for (let t = start; t < end; t++) {
      let bin = Math.floor((entropy[l * T + t]! / lnE) * bins);
      // Rounding can put a uniform gate's entropy a hair above ln(E).
      if (bin < 0) bin = 0;
      else if (bin >= bins) bin = bins - 1;
      hist[histOff + bin]!++;

      const base = (l * T + t) * K;
      for (let slot = 0; slot < K; slot++) chosen[slot] = experts[base + slot]!;
      for (let i = 0; i < K - 1; i++) {
        const a = chosen[i]!;
        const rowA = pairOff + a * E;
        for (let j = i + 1; j < K; j++) {
          const b = chosen[j]!;
          const ab = rowA + b;
          const ba = pairOff + b * E + a;
          if (pairs[ab]!++ === 0 && cells) cells.push(ab, ba);
          pairs[ba]!++;
        }
      }
    }
    acc.entropySum[l]! += sums[3 * l]!;
    acc.top1Sum[l]! += sums[3 * l + 1]!;
    acc.topKMassSum[l]! += sums[3 * l + 2]!;

    const answerBase = (l * T + answer) * K;
    for (let slot = 0; slot < K; slot++) {
      const i = layerOff + experts[answerBase + slot]!;
      acc.answerUse[i]!++;
      if (correct) acc.answerCorrect[i]!++;
    }
  }

  addExpertScores(acc.expertScores, record, start, end);
  const subject = subjectEntry(acc, record.subject);
  subject.questions++;
  const assignments = subject.assignments;
  const activationCorrect = acc.activationCorrect;
  for (let i = 0; i < L * E; i++) {
    const c = counts[i]!;
    if (c === 0) continue;
    assignments[i]! += c;
    if (correct) activationCorrect[i]! += c;
  }
  if (correct) {
    subject.correct++;
    acc.correct++;
  }
  acc.questions++;
  acc.scopeTokens += end - start;
}

function badExpert(r: RoutingRecord, l: number, t: number, slot: number, e: number, E: number): Error {
  return new Error(`record ${r.questionId}: expert ${e} at layer ${l} token ${t} slot ${slot} is not in [0, ${E})`);
}

// ---------------------------------------------------------------------------------------------------
// Merging

function checkCompatible(a: RunAccumulator, b: RunAccumulator): void {
  if (a.numLayers !== b.numLayers || a.numExperts !== b.numExperts || a.topK !== b.topK) {
    throw new Error(`cannot merge accumulators of shapes ${a.numLayers}x${a.numExperts} top-${a.topK} and ` + `${b.numLayers}x${b.numExperts} top-${b.topK}`);
  }
  if (a.scope !== b.scope) throw new Error(`cannot merge accumulators of token scopes ${a.scope} and ${b.scope}`);
  if (a.entropyBins !== b.entropyBins) throw new Error(`cannot merge entropy histograms of ${a.entropyBins} and ${b.entropyBins} bins`);
}

function addInto(target: number[], source: readonly number[]): void {
  for (let i = 0; i < target.length; i++) target[i]! += source[i]!;
}

function addPairsInto(target: RunAccumulator, source: RunAccumulator): void {
  const from = pairCells.get(source);
  const into = pairCells.get(target);
  if (!from && !into) return addInto(target.pairs, source.pairs);
  const cells = from ?? source.pairs.keys();
  for (const i of cells) {
    const v = source.pairs[i]!;
    if (v === 0) continue;
    if (into && target.pairs[i] === 0) into.push(i);
    target.pairs[i]! += v;
  }
}

/** Adds source into target (target is mutated, source is not). */
export function mergeInto(target: RunAccumulator, source: RunAccumulator): void {
  checkCompatible(target, source);
  target.questions += source.questions;
  target.correct += source.correct;
  target.scopeTokens += source.scopeTokens;
  addInto(target.entropySum, source.entropySum);
  addInto(target.entropyHist, source.entropyHist);
  addInto(target.top1Sum, source.top1Sum);
  addInto(target.topKMassSum, source.topKMassSum);
  addInto(target.answerUse, source.answerUse);
  addInto(target.answerCorrect, source.answerCorrect);
  addInto(target.activationCorrect, source.activationCorrect);
  addPairsInto(target, source);
  mergeExpertScores(target.expertScores, source.expertScores);
  for (const s of source.subjects) {
    const t = subjectEntry(target, s.subject);
    t.questions += s.questions;
    t.correct += s.correct;
    addInto(t.assignments, s.assignments);
  }
}

export function cloneAccumulator(acc: RunAccumulator): RunAccumulator {
  return {
    ...acc,
    entropySum: acc.entropySum.slice(),
    entropyHist: acc.entropyHist.slice(),
    top1Sum: acc.top1Sum.slice(),
    topKMassSum: acc.topKMassSum.slice(),
    answerUse: acc.answerUse.slice(),
    answerCorrect: acc.answerCorrect.slice(),
    activationCorrect: acc.activationCorrect.slice(),
    pairs: acc.pairs.slice(),
    subjects: acc.subjects.map((s) => ({ ...s, assignments: s.assignments.slice() })),
    expertScores: cloneExpertScores(acc.expertScores),
  };
}

/**
 * The accumulator of the union of both inputs' questions; neither input is changed. Associative and
 * commutative (exactly for counts, up to floating-point rounding for the weight and entropy sums), so
 * batch deltas can be summed in any order and grouping. Subjects keep first-seen order, which only
 * affects the order of the subjects array, never a summary value.
 */
export function mergeAccumulators(a: RunAccumulator, b: RunAccumulator): RunAccumulator {
  const out = cloneAccumulator(a);
  mergeInto(out, b);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Batch deltas

/** The parsed JSON form of an encoded accumulator; count arrays are encoded by sparse.ts. */
export interface AccumulatorDelta {
  format: 'moe-scope.accumulator-delta';
  version: 1;
  /** [numLayers, numExperts, topK] */
  shape: [number, number, number];
  scope: TokenScope;
  entropyBins: number;
  questions: number;
  correct: number;
  scopeTokens: number;
  entropySum: number[];
  top1Sum: number[];
  topKMassSum: number[];
  entropyHist: string;
  answerUse: string;
  answerCorrect: string;
  activationCorrect: string;
  /** Upper triangle a < b of each layer's symmetric pair-count matrix, layer by layer, row by row. */
  pairs: string;
  /** [subject, questions, correct, encoded assignments], sorted by subject. */
  subjects: [string, number, number, string][];
  /** Absent in deltas written before the pruning scores existed (read as zeros). */
  expertScores?: ExpertScoresDelta;
}

/** The delta as a JSON-ready object, for callers that embed it in a larger JSON record. */
export function toDelta(acc: RunAccumulator): AccumulatorDelta {
  return {
    format: 'moe-scope.accumulator-delta',
    version: 1,
    shape: [acc.numLayers, acc.numExperts, acc.topK],
    scope: acc.scope,
    entropyBins: acc.entropyBins,
    questions: acc.questions,
    correct: acc.correct,
    scopeTokens: acc.scopeTokens,
    entropySum: acc.entropySum.slice(),
    top1Sum: acc.top1Sum.slice(),
    topKMassSum: acc.topKMassSum.slice(),
    entropyHist: encodeCounts(acc.entropyHist),
    answerUse: encodeCounts(acc.answerUse),
    answerCorrect: encodeCounts(acc.answerCorrect),
    activationCorrect: encodeCounts(acc.activationCorrect),
    pairs: encodeUpperTriangles(acc),
    subjects: acc.subjects
      .slice()
      .sort((x, y) => (x.subject < y.subject ? -1 : x.subject > y.subject ? 1 : 0))
      .map((s): [string, number, number, string] => [s.subject, s.questions, s.correct, encodeCounts(s.assignments)]),
    expertScores: expertScoresToDelta(acc.expertScores),
  };
}

/**
 * Compact text of an accumulator (usually one batch's): every count array is a sparse or dense varint
 * string (zeros omitted when sparse), the per-layer float sums stay JSON numbers so that they round-trip
 * exactly. decodeDelta(encodeDelta(acc)) equals acc up to the order of acc.subjects.
 */
export function encodeDelta(acc: RunAccumulator): string {
  return JSON.stringify(toDelta(acc));
}

/**
 * encodeCounts of the pair counts above the diagonal, row by row (the whole of a symmetric zero-diagonal
 * matrix), from the non-zero cells: no copy of the triangles, which are mostly zeros in a batch's delta
 * (this runs once per batch record); with tracked cells, without scanning the matrix either.
 */
function encodeUpperTriangles(acc: RunAccumulator): string {
  const { numLayers: L, numExperts: E, pairs } = acc;
  const perLayer = (E * (E - 1)) / 2;
  const cells = pairCells.get(acc);
  if (cells) {
    // Row-major order of the cells above the diagonal is their order in the triangles.
    const upper = Float64Array.from(cells.filter((c) => Math.floor((c % (E * E)) / E) < c % E)).sort();
    const indices = new Array<number>(upper.length);
    const values = new Array<number>(upper.length);
    for (let k = 0; k < upper.length; k++) {
      const c = upper[k]!;
      const r = c % (E * E);
      const a = Math.floor(r / E);
      // Rows before a hold E-1, E-2, ... cells of the triangle.
      indices[k] = Math.floor(c / (E * E)) * perLayer + a * (E - 1) - (a * (a - 1)) / 2 + ((r % E) - a - 1);
      values[k] = pairs[c]!;
    }
    return encodeNonZeroCounts(L * perLayer, indices, values);
  }
  const indices: number[] = [];
  const values: number[] = [];
  let i = 0;
  for (let l = 0; l < L; l++) {
    for (let a = 0; a < E; a++) {
      const row = (l * E + a) * E;
      for (let b = a + 1; b < E; b++, i++) {
        const v = pairs[row + b]!;
        if (v !== 0) {
          indices.push(i);
          values.push(v);
        }
      }
    }
  }
  return encodeNonZeroCounts(i, indices, values);
}

function symmetricFromTriangles(tri: readonly number[], L: number, E: number): number[] {
  const pairs = zeros(L * E * E);
  let i = 0;
  for (let l = 0; l < L; l++) {
    for (let a = 0; a < E; a++) {
      for (let b = a + 1; b < E; b++) {
        const v = tri[i++]!;
        pairs[(l * E + a) * E + b] = v;
        pairs[(l * E + b) * E + a] = v;
      }
    }
  }
  return pairs;
}

function fail(message: string): never {
  throw new Error(`invalid accumulator delta: ${message}`);
}

function count(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(`${what} is not a non-negative integer`);
  return v;
}

function finiteArray(v: unknown, length: number, what: string): number[] {
  if (!Array.isArray(v) || v.length !== length) fail(`${what} is not an array of ${length} numbers`);
  for (const x of v) if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${what} holds a non-finite value`);
  return (v as number[]).slice();
}

function sum(values: readonly number[], from = 0, to = values.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += values[i]!;
  return s;
}

/**
 * Reads a delta written by encodeDelta, given as the JSON text or the parsed object. Deltas come from
 * files, so everything is validated, including the invariants that hold for any honest accumulator
 * (e.g. each layer's histogram counts every in-scope token once); anything else throws.
 */
export function decodeDelta(json: unknown): RunAccumulator {
  let d: unknown = json;
  if (typeof json === 'string') {
    try {
      d = JSON.parse(json);
    } catch (e) {
      fail(`not JSON (${(e as Error).message})`);
    }
  }
  if (typeof d !== 'object' || d === null) fail('not an object');
  const o = d as Partial<Record<keyof AccumulatorDelta, unknown>>;
  if (o.format !== 'moe-scope.accumulator-delta') fail(`unknown format ${String(o.format)}`);
  if (o.version !== 1) fail(`unsupported version ${String(o.version)}`);
  if (!Array.isArray(o.shape) || o.shape.length !== 3) fail('shape is not [numLayers, numExperts, topK]');
  if (!isTokenScope(o.scope)) fail(`unknown token scope ${String(o.scope)}`);
  const shape: AccumulatorShape = { numLayers: o.shape[0], numExperts: o.shape[1], topK: o.shape[2] };
  let acc: RunAccumulator;
  try {
    acc = createAccumulator(shape, o.scope, { entropyBins: o.entropyBins as number });
  } catch (e) {
    fail((e as Error).message);
  }
  const L = acc.numLayers;
  const E = acc.numExperts;
  const K = acc.topK;
  acc.questions = count(o.questions, 'questions');
  acc.correct = count(o.correct, 'correct');
  acc.scopeTokens = count(o.scopeTokens, 'scopeTokens');
  acc.entropySum = finiteArray(o.entropySum, L, 'entropySum');
  acc.top1Sum = finiteArray(o.top1Sum, L, 'top1Sum');
  acc.topKMassSum = finiteArray(o.topKMassSum, L, 'topKMassSum');
  try {
    acc.entropyHist = decodeCounts(o.entropyHist, L * acc.entropyBins, 'entropyHist');
    acc.answerUse = decodeCounts(o.answerUse, L * E, 'answerUse');
    acc.answerCorrect = decodeCounts(o.answerCorrect, L * E, 'answerCorrect');
    acc.activationCorrect = decodeCounts(o.activationCorrect, L * E, 'activationCorrect');
    acc.pairs = symmetricFromTriangles(decodeCounts(o.pairs, (L * E * (E - 1)) / 2, 'pairs'), L, E);
  } catch (e) {
    fail((e as Error).message);
  }
  try {
    acc.expertScores = expertScoresFromDelta(o.expertScores, L * E);
  } catch (e) {
    fail((e as Error).message);
  }
  if (!Array.isArray(o.subjects)) fail('subjects is not an array');
  const names = new Set<string>();
  for (const entry of o.subjects as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 4 || typeof entry[0] !== 'string') fail('a subject entry is not [name, questions, correct, assignments]');
    const [name, q, c, a] = entry as [string, unknown, unknown, unknown];
    if (names.has(name)) fail(`subject ${name} appears twice`);
    names.add(name);
    let assignments: number[];
    try {
      assignments = decodeCounts(a, L * E, `subject ${name}`);
    } catch (e) {
      fail((e as Error).message);
    }
    const s: SubjectAccumulator = {
      subject: name,
      questions: count(q, `subject ${name} questions`),
      correct: count(c, `subject ${name} correct`),
      assignments,
    };
    if (s.correct > s.questions) fail(`subject ${name} has more correct answers than questions`);
    acc.subjects.push(s);
  }

  if (sum(acc.subjects.map((s) => s.questions)) !== acc.questions) fail('subject question counts do not add up to questions');
  if (sum(acc.subjects.map((s) => s.correct)) !== acc.correct) fail('subject correct counts do not add up to correct');
  for (let l = 0; l < L; l++) {
    if (sum(acc.entropyHist, l * acc.entropyBins, (l + 1) * acc.entropyBins) !== acc.scopeTokens)
      fail(`entropy histogram of layer ${l} does not count scopeTokens`);
    if (sum(acc.answerUse, l * E, (l + 1) * E) !== acc.questions * K) fail(`answer-position use of layer ${l} does not count k experts per question`);
    if (sum(acc.answerCorrect, l * E, (l + 1) * E) !== acc.correct * K) fail(`answerCorrect of layer ${l} does not count k experts per correct question`);
    // Each in-scope token adds every one of its k(k-1)/2 pairs twice, once per order.
    if (sum(acc.pairs, l * E * E, (l + 1) * E * E) !== acc.scopeTokens * K * (K - 1))
      fail(`pair counts of layer ${l} do not count k(k-1)/2 pairs per in-scope token`);
  }
  const activation = zeros(L * E);
  for (const s of acc.subjects) addInto(activation, s.assignments);
  for (let l = 0; l < L; l++) {
    if (sum(activation, l * E, (l + 1) * E) !== acc.scopeTokens * K) fail(`assignments of layer ${l} do not count k experts per in-scope token`);
  }
  for (let i = 0; i < L * E; i++) {
    if (acc.answerCorrect[i]! > acc.answerUse[i]!) fail('answerCorrect exceeds answerUse');
    if (acc.activationCorrect[i]! > activation[i]!) fail('activationCorrect exceeds the assignments');
    if (acc.expertScores.normCount[i]! > activation[i]!) fail('expertScores.normCount exceeds the assignments');
  }
  return acc;
}

// ---------------------------------------------------------------------------------------------------
// Summary

/** Category of a subject, or undefined when it has none; a function or a subject -> category record. */
export type SubjectCategories = ((subject: string) => string | undefined) | Readonly<Record<string, string | undefined>>;

export interface SummarizeOptions {
  categories?: SubjectCategories;
}

/** The parts of a RunSummary that come from the routing records. */
export type AnalysisSummary = Pick<
  RunSummary,
  'tokenScope' | 'tokenScopeDefinition' | 'questions' | 'accuracy' | 'layers' | 'neverActivatedTotal' | 'subjectSpecialisation' | 'definitions'
>;

function categoryOf(categories: SubjectCategories | undefined, subject: string): string | null {
  if (!categories) return null;
  const c =
    typeof categories === 'function' ? categories(subject) : Object.prototype.hasOwnProperty.call(categories, subject) ? categories[subject] : undefined;
  return typeof c === 'string' ? c : null;
}

/** Sets an own enumerable property even for keys like "__proto__", which plain assignment would not. */
function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

function ratio(numerator: number, denominator: number): number {
  return denominator > 0 ? numerator / denominator : 0;
}

/**
 * Quantile q of the values counted in hist[offset .. offset+bins), bins of equal width over [0, 1]:
 * the v at which a fraction q of the total lies below, treating each bin's values as spread evenly
 * across the bin. Within one bin width of the empirical quantile. 0 when the histogram is empty.
 */
export function histogramQuantile(hist: readonly number[], offset: number, bins: number, q: number): number {
  const total = sum(hist, offset, offset + bins);
  if (total === 0) return 0;
  const rank = q * total;
  let below = 0;
  for (let b = 0; b < bins; b++) {
    const c = hist[offset + b]!;
    if (c > 0 && below + c >= rank) return (b + (rank - below) / c) / bins;
    below += c;
  }
  return 1;
}

/**
 * The routing and accuracy parts of a RunSummary; every metric's definition (with the token scope) is in
 * the returned definitions, from definitions.ts. In short, per layer l and expert e, over in-scope tokens:
 * - activationCounts[e]: (token, slot) assignments of e; neverActivated: experts with 0;
 *   neverActivatedTotal: (layer, expert) pairs with 0.
 * - entropyNormalized: mean of entropy / ln(E); entropyQuantiles from the histogram (1/entropyBins
 *   resolution); meanTop1Weight and meanTopKMass: means of the largest and the summed applied weights.
 * - expertAccuracy[e]: correct / questions among questions whose answer-position top-k contains e
 *   (null when none; expertAccuracyCount holds that number of questions), whatever the scope.
 * - expertAccuracyTokenWeighted[e]: sum_q n_q(e) correct_q / sum_q n_q(e), n_q(e) = in-scope
 *   assignments of e in question q; null when e has none.
 * - coactivation[a * E + b] = count(a, b) / count(a) for a != b, count(a, b) = tokens whose top-k holds
 *   both, count(a) = tokens whose top-k holds a (= activationCounts[a]); 0 on the diagonal and in rows
 *   of never-chosen experts.
 * - subjectSpecialisation[s][l][e] = (assignments of e in subject s) / (all of s's assignments in l) x k;
 *   uniform routing gives k/E. All zeros for a layer where s has no in-scope tokens.
 * Accuracy: micro = correct / questions; macro = mean over subjects of subject accuracy; per category =
 * micro over the category's subjects (subjects without a category are left out). Ratios over nothing
 * are 0 (there is no NaN in JSON).
 */
export function summarizeAccumulator(acc: RunAccumulator, options: SummarizeOptions = {}): AnalysisSummary {
  const L = acc.numLayers;
  const E = acc.numExperts;
  const K = acc.topK;
  const subjects = acc.subjects.slice().sort((x, y) => (x.subject < y.subject ? -1 : x.subject > y.subject ? 1 : 0));

  const activation = zeros(L * E);
  for (const s of subjects) addInto(activation, s.assignments);

  const layers: LayerSummary[] = [];
  let neverActivatedTotal = 0;
  for (let l = 0; l < L; l++) {
    const off = l * E;
    const activationCounts = activation.slice(off, off + E);
    const neverActivated: number[] = [];
    for (let e = 0; e < E; e++) if (activationCounts[e] === 0) neverActivated.push(e);
    neverActivatedTotal += neverActivated.length;

    const expertAccuracy: (number | null)[] = [];
    const expertAccuracyCount: number[] = [];
    const expertAccuracyTokenWeighted: (number | null)[] = [];
    for (let e = 0; e < E; e++) {
      const used = acc.answerUse[off + e]!;
      expertAccuracy.push(used > 0 ? acc.answerCorrect[off + e]! / used : null);
      expertAccuracyCount.push(used);
      const n = activationCounts[e]!;
      expertAccuracyTokenWeighted.push(n > 0 ? acc.activationCorrect[off + e]! / n : null);
    }

    const coactivation = zeros(E * E);
    for (let a = 0; a < E; a++) {
      const chosen = activationCounts[a]!;
      if (chosen === 0) continue;
      for (let b = 0; b < E; b++) {
        if (b === a) continue;
        coactivation[a * E + b] = acc.pairs[(off + a) * E + b]! / chosen;
      }
    }

    const histOff = l * acc.entropyBins;
    const quantile = (q: number): number => histogramQuantile(acc.entropyHist, histOff, acc.entropyBins, q);
    layers.push({
      layer: l,
      activationCounts,
      neverActivated,
      entropyNormalized: ratio(acc.entropySum[l]!, acc.scopeTokens),
      entropyQuantiles: { p05: quantile(0.05), p25: quantile(0.25), p50: quantile(0.5), p75: quantile(0.75), p95: quantile(0.95) },
      meanTop1Weight: ratio(acc.top1Sum[l]!, acc.scopeTokens),
      meanTopKMass: ratio(acc.topKMassSum[l]!, acc.scopeTokens),
      expertAccuracy,
      expertAccuracyCount,
      expertAccuracyTokenWeighted,
      coactivation,
      expertScores: summarizeExpertScores(acc.expertScores, l, E),
    });
  }

  const perSubject: Record<string, SubjectSummary> = {};
  const perCategory: AnalysisSummary['accuracy']['perCategory'] = {};
  const categoryTotals = new Map<string, { questions: number; correct: number; subjects: number }>();
  const subjectSpecialisation: Record<string, number[][]> = {};
  let macroSum = 0;
  for (const s of subjects) {
    const category = categoryOf(options.categories, s.subject);
    const accuracy = ratio(s.correct, s.questions);
    macroSum += accuracy;
    setOwn(perSubject, s.subject, { subject: s.subject, category, questions: s.questions, correct: s.correct, accuracy });
    if (category !== null) {
      const c = categoryTotals.get(category) ?? { questions: 0, correct: 0, subjects: 0 };
      c.questions += s.questions;
      c.correct += s.correct;
      c.subjects++;
      categoryTotals.set(category, c);
    }
    const perLayer: number[][] = [];
    for (let l = 0; l < L; l++) {
      const row = s.assignments.slice(l * E, (l + 1) * E);
      const total = sum(row);
      perLayer.push(row.map((n) => ratio(n, total) * K));
    }
    setOwn(subjectSpecialisation, s.subject, perLayer);
  }
  for (const name of [...categoryTotals.keys()].sort()) {
    const c = categoryTotals.get(name)!;
    setOwn(perCategory, name, { ...c, accuracy: ratio(c.correct, c.questions) });
  }

  return {
    tokenScope: acc.scope,
    tokenScopeDefinition: tokenScopeDefinition(acc.scope),
    questions: acc.questions,
    accuracy: {
      micro: ratio(acc.correct, acc.questions),
      macro: ratio(macroSum, subjects.length),
      perSubject,
      perCategory,
    },
    layers,
    neverActivatedTotal,
    subjectSpecialisation,
    definitions: {
      ...analysisDefinitions({ scope: acc.scope, numLayers: L, numExperts: E, topK: K, entropyBins: acc.entropyBins }),
      ...EXPERT_SCORE_DEFINITIONS(tokenScopeDefinition(acc.scope), K),
    },
  };
}
