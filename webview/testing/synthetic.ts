/**
 * Deterministic synthetic data for tests, the render benchmark and screenshots: an MMLU-like prompt split
 * into word tokens, OLMoE-shaped routing (near-uniform softmax over E experts, top-k without
 * renormalisation), a run summary and heatmap data. No model involved.
 */
import type { HeatmapData, ModelInfo, Routing, RunSummary, TokenSpan, TracePayload } from '../../src/shared/protocol';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rnd: () => number): number {
  const u = Math.max(1e-12, rnd());
  const v = rnd();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

const SHOT =
  'The following are multiple choice questions (with answers) about high school physics.\n\n' +
  'A ball is thrown straight up with speed 20 m/s. Ignoring air resistance, how high does it rise?\n' +
  'A. 10 m\nB. 20 m\nC. 40 m\nD. 80 m\nAnswer: B\n\n' +
  'Which quantity is conserved in an elastic collision but not in an inelastic one?\n' +
  'A. momentum\nB. mass\nC. kinetic energy\nD. charge\nAnswer: C\n\n';

export const SYNTHETIC_QUESTION =
  'A 2 kg block slides down a frictionless incline of height 5 m. What is its speed at the bottom?\n' +
  'A. 5 m/s\nB. 7 m/s\nC. 10 m/s\nD. 14 m/s\nAnswer:';

/** Splits text into GPT-style word tokens (leading space kept, newlines separate). */
export function wordTokens(text: string, maxTokens = Infinity): TokenSpan[] {
  const out: TokenSpan[] = [];
  const re = /\n|[ ]?[A-Za-z]+|[ ]?[0-9]+|[ ]?[^\sA-Za-z0-9]|[ ]+/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) && out.length < maxTokens) {
    out.push({ id: out.length + 100, text: m[0], start: m.index, end: m.index + m[0].length });
  }
  return out;
}

export function syntheticPrompt(numTokens: number, question = SYNTHETIC_QUESTION): { text: string; tokens: TokenSpan[] } {
  const qTokens = wordTokens(question).length;
  let prefix = '';
  while (wordTokens(prefix).length + qTokens < numTokens) prefix += SHOT;
  let tokens = wordTokens(prefix + question);
  // Trim from the front so the question (and the answer position) stays at the end.
  const drop = Math.max(0, tokens.length - numTokens);
  tokens = tokens.slice(drop).map((t, i) => ({ ...t, id: 100 + i }));
  const start = tokens[0]?.start ?? 0;
  const text = (prefix + question).slice(start);
  return { text, tokens: tokens.map((t) => ({ ...t, start: t.start - start, end: t.end - start })) };
}

export function syntheticRouting(numLayers: number, numTokens: number, numExperts: number, topK: number, opts: { seed?: number; includeProbs?: boolean; temperature?: number } = {}): Routing {
  const rnd = mulberry32(opts.seed ?? 1);
  const temp = opts.temperature ?? 0.7;
  const probs = new Float32Array(numLayers * numTokens * numExperts);
  const topExperts = new Uint16Array(numLayers * numTokens * topK);
  const topWeights = new Float32Array(numLayers * numTokens * topK);
  const entropy = new Float32Array(numLayers * numTokens);
  // Per-layer expert bias so some experts are popular and some rare (like real routers).
  const bias = Array.from({ length: numLayers }, () => Array.from({ length: numExperts }, () => gaussian(rnd) * 0.9));
  const logits = new Float64Array(numExperts);
  const idx = Array.from({ length: numExperts }, (_, i) => i);
  for (let l = 0; l < numLayers; l++) {
    for (let t = 0; t < numTokens; t++) {
      let mx = -Infinity;
      for (let e = 0; e < numExperts; e++) {
        logits[e] = (bias[l]![e]! + gaussian(rnd)) * temp;
        if (logits[e]! > mx) mx = logits[e]!;
      }
      let sum = 0;
      for (let e = 0; e < numExperts; e++) sum += (logits[e] = Math.exp(logits[e]! - mx));
      let h = 0;
      const base = (l * numTokens + t) * numExperts;
      for (let e = 0; e < numExperts; e++) {
        const p = logits[e]! / sum;
        probs[base + e] = p;
        if (p > 0) h -= p * Math.log(p);
      }
      entropy[l * numTokens + t] = h;
      idx.sort((a, b) => probs[base + b]! - probs[base + a]!);
      const kb = (l * numTokens + t) * topK;
      for (let j = 0; j < topK; j++) {
        topExperts[kb + j] = idx[j]!;
        topWeights[kb + j] = probs[base + idx[j]!]!;
      }
    }
  }
  return { numLayers, numTokens, numExperts, topK, probs: opts.includeProbs === false ? undefined : probs, topExperts, topWeights, entropy };
}

export function syntheticModel(numLayers = 16, numExperts = 64, topK = 8, demo = true): ModelInfo {
  return {
    path: '/models/olmoe-1b-7b-demo',
    family: 'olmoe',
    modelType: 'olmoe',
    numLayers,
    numExperts,
    topK,
    hiddenSize: 2048,
    vocabSize: 50304,
    maxPositions: 4096,
    normTopKProb: false,
    sharedExperts: 0,
    executionProvider: 'cpu',
    providerNote: demo ? 'CUDA provider not installed' : undefined,
    dtype: 'float32',
    answerTokenIds: [329, 378, 330, 399],
    demo: demo ? { note: 'Generated by moe-scope make-demo-model; routing is meaningless.' } : undefined,
    loadMs: 1234,
  };
}

export function syntheticTrace(opts: { requestId?: number; numTokens?: number; numLayers?: number; numExperts?: number; topK?: number; question?: string; seed?: number; includeProbs?: boolean; demo?: boolean } = {}): TracePayload {
  const L = opts.numLayers ?? 16;
  const T = opts.numTokens ?? 120;
  const E = opts.numExperts ?? 64;
  const K = opts.topK ?? 8;
  const { text, tokens } = syntheticPrompt(T, opts.question ?? SYNTHETIC_QUESTION);
  const routing = syntheticRouting(L, tokens.length, E, K, { seed: opts.seed ?? 7, includeProbs: opts.includeProbs });
  const answerProbs: [number, number, number, number] = [0.18, 0.47, 0.29, 0.06];
  return {
    requestId: opts.requestId ?? 1,
    question: { subject: 'high_school_physics', text: opts.question ?? SYNTHETIC_QUESTION, gold: 'C' },
    result: {
      model: syntheticModel(L, E, K, opts.demo ?? true),
      text,
      tokens,
      routing,
      answerLogProbs: answerProbs.map((p) => Math.log(p * 0.83)) as [number, number, number, number],
      answerProbs,
      ms: 312,
    },
  };
}

const SUBJECTS: [string, string][] = [
  ['abstract_algebra', 'STEM'], ['anatomy', 'other'], ['astronomy', 'STEM'], ['business_ethics', 'other'],
  ['college_biology', 'STEM'], ['college_physics', 'STEM'], ['high_school_physics', 'STEM'], ['econometrics', 'social sciences'],
  ['high_school_geography', 'social sciences'], ['sociology', 'social sciences'], ['philosophy', 'humanities'],
  ['world_religions', 'humanities'], ['formal_logic', 'humanities'], ['virology', 'other'],
];

export function syntheticSummary(opts: { numLayers?: number; numExperts?: number; topK?: number; seed?: number; subjects?: [string, string | null][] } = {}): RunSummary {
  const L = opts.numLayers ?? 16;
  const E = opts.numExperts ?? 64;
  const K = opts.topK ?? 8;
  const rnd = mulberry32(opts.seed ?? 3);
  const subjects = opts.subjects ?? SUBJECTS;
  const perSubject: RunSummary['accuracy']['perSubject'] = {};
  let questions = 0;
  let correct = 0;
  for (const [subject, category] of subjects) {
    const q = 20 + Math.floor(rnd() * 120);
    const c = Math.floor(q * (0.3 + rnd() * 0.45));
    perSubject[subject] = { subject, category, questions: q, correct: c, accuracy: c / q };
    questions += q;
    correct += c;
  }
  const perCategory: RunSummary['accuracy']['perCategory'] = {};
  for (const s of Object.values(perSubject)) {
    if (!s.category) continue;
    const c = (perCategory[s.category] ??= { questions: 0, correct: 0, accuracy: 0, subjects: 0 });
    c.questions += s.questions;
    c.correct += s.correct;
    c.subjects++;
  }
  for (const c of Object.values(perCategory)) c.accuracy = c.correct / c.questions;
  const macro = Object.values(perSubject).reduce((a, s) => a + s.accuracy, 0) / subjects.length;
  const layers: RunSummary['layers'] = [];
  let neverTotal = 0;
  for (let l = 0; l < L; l++) {
    const counts = Array.from({ length: E }, () => (rnd() < 0.55 ? 0 : Math.floor(Math.exp(rnd() * 6))));
    const never = counts.flatMap((c, e) => (c === 0 ? [e] : []));
    neverTotal += never.length;
    const mean = 0.9 + rnd() * 0.08;
    layers.push({
      layer: l,
      activationCounts: counts,
      neverActivated: never,
      entropyNormalized: mean,
      entropyQuantiles: { p05: mean - 0.06, p25: mean - 0.02, p50: mean, p75: Math.min(1, mean + 0.015), p95: Math.min(1, mean + 0.03) },
      meanTop1Weight: 0.05,
      meanTopKMass: 0.3,
      expertAccuracy: counts.map((c) => (c === 0 ? null : 0.2 + rnd() * 0.6)),
      expertAccuracyCount: counts.map((c) => (c === 0 ? 0 : Math.max(1, Math.floor(c / 3)))),
      expertAccuracyTokenWeighted: counts.map((c) => (c === 0 ? null : 0.5)),
      coactivation: [],
    });
  }
  const subjectSpecialisation: Record<string, number[][]> = {};
  for (const [subject] of subjects) subjectSpecialisation[subject] = Array.from({ length: L }, () => Array.from({ length: E }, () => rnd() * 0.3));
  return {
    version: 1,
    model: { path: '/models/olmoe-1b-7b', family: 'olmoe', numLayers: L, numExperts: E, topK: K, demo: false },
    dataset: { path: '/data/mmlu', split: 'test', fingerprint: 'sha256:abc123' },
    shots: 5,
    tokenScope: 'answer',
    tokenScopeDefinition: 'only the last prompt token, whose next-token logits are scored',
    questions,
    complete: true,
    accuracy: { micro: correct / questions, macro, perSubject, perCategory },
    neverActivatedTotal: neverTotal,
    layers,
    subjectSpecialisation,
    definitions: {
      tokenScope: 'Token scope of the routing statistics: the answer position.',
      accuracyMicro: 'Micro accuracy: correctly answered questions / all questions.',
      accuracyMacro: 'Macro accuracy: the mean over subjects of each subject\'s accuracy.',
      neverActivated: 'Per layer: experts with zero (token, slot) assignments.',
      entropyNormalized: 'Per layer: mean gate entropy divided by ln(E).',
      expertAccuracy: 'Per layer and expert e: among the questions whose top-k experts at the answer position include e, the fraction answered correctly.',
    },
    tokens: { computed: 123456, padding: 789, prefixReusedTokens: 45678 },
    elapsedSeconds: 4321,
  };
}

export function heatmapFromTrace(p: TracePayload, label = 'trace'): HeatmapData {
  const r = p.result.routing;
  const counts = Array.from({ length: r.numLayers }, () => new Array<number>(r.numExperts).fill(0));
  for (let l = 0; l < r.numLayers; l++)
    for (let t = 0; t < r.numTokens; t++)
      for (let s = 0; s < r.topK; s++) counts[l]![r.topExperts[(l * r.numTokens + t) * r.topK + s]!]!++;
  return { source: 'trace', label, numLayers: r.numLayers, numExperts: r.numExperts, counts };
}

export function heatmapFromSummary(s: RunSummary, label = 'run'): HeatmapData {
  return {
    source: 'run',
    label,
    numLayers: s.model.numLayers,
    numExperts: s.model.numExperts,
    counts: s.layers.map((l) => l.activationCounts),
    expertAccuracy: s.layers.map((l) => l.expertAccuracy),
    expertAccuracyCount: s.layers.map((l) => l.expertAccuracyCount),
    topSubjects: s.layers.map((l) =>
      l.activationCounts.map((_c, e) =>
        Object.entries(s.subjectSpecialisation).map(([subject, m]) => ({ subject, share: m[l.layer]![e]! })).sort((a, b) => b.share - a.share).slice(0, 3))),
    tokenScope: s.tokenScope,
  };
}
