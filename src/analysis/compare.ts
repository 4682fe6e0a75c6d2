/**
 * Comparing two evaluation runs (typically a baseline and an experiment on the same questions):
 * accuracy with deltas, McNemar's exact test on paired per-question correctness, and the change in how
 * each layer's assignments are shared among experts. Pure functions over data already read.
 */
import type { AccuracyDelta, ComparedRun, FlippedQuestion, McNemarResult, RunComparison, RunSummary } from '../shared/protocol';
import { compareCalibration } from './calibration';

/** The per-question outcome McNemar needs (a subset of the run folder's QuestionResult). */
export interface QuestionOutcome {
  id: string;
  correct: boolean;
  /** For the flipped-question list (the run folder's QuestionResult has them). */
  subject?: string;
  gold?: number;
  predicted?: number;
}

/**
 * Questions answered in both runs whose correctness differs, right-to-wrong first, then by subject and id.
 */
export function flippedQuestions(a: QuestionOutcome[], b: QuestionOutcome[]): FlippedQuestion[] {
  const inB = new Map(b.map((q) => [q.id, q]));
  const out: FlippedQuestion[] = [];
  for (const qa of a) {
    const qb = inB.get(qa.id);
    if (!qb || qa.correct === qb.correct) continue;
    out.push({
      id: qa.id,
      subject: qa.subject ?? qb.subject ?? '',
      gold: qa.gold ?? qb.gold ?? -1,
      predictedA: qa.predicted ?? -1,
      predictedB: qb.predicted ?? -1,
      direction: qa.correct ? 'right-to-wrong' : 'wrong-to-right',
    });
  }
  const rank = (f: FlippedQuestion) => (f.direction === 'right-to-wrong' ? 0 : 1);
  return out.sort((x, y) => rank(x) - rank(y) || (x.subject < y.subject ? -1 : x.subject > y.subject ? 1 : 0) || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

export interface RunForComparison {
  label: string;
  runDir: string;
  summary: RunSummary;
  questions: QuestionOutcome[];
  /** From the run's manifest, when it records one: results of different engines or dtypes differ slightly. */
  engine?: { kind: string; dtype: string };
}

/**
 * Two-sided exact McNemar test. b01 and b10 are the discordant counts; under the null hypothesis each
 * discordant question is equally likely to fall either way, so min(b01, b10) ~ Bin(b01 + b10, 1/2).
 */
export function mcnemarExactP(b01: number, b10: number): number {
  if (!Number.isInteger(b01) || !Number.isInteger(b10) || b01 < 0 || b10 < 0)
    throw new Error(`McNemar: counts must be non-negative integers, got ${b01} and ${b10}`);
  const n = b01 + b10;
  if (n === 0) return 1;
  const k = Math.min(b01, b10);
  // Sum pmf(0..k) in log space: pmf(0) = 2^-n, pmf(i + 1) = pmf(i) (n - i) / (i + 1). Stays finite for any n.
  let logPmf = -n * Math.LN2;
  let logSum = logPmf;
  for (let i = 0; i < k; i++) {
    logPmf += Math.log(n - i) - Math.log(i + 1);
    const hi = Math.max(logSum, logPmf);
    logSum = hi + Math.log(Math.exp(logSum - hi) + Math.exp(logPmf - hi));
  }
  return Math.min(1, 2 * Math.exp(logSum));
}

/** Pairs questions by id. Questions that only one run answered are left out (and counted in `unpaired`). */
export function mcnemar(a: QuestionOutcome[], b: QuestionOutcome[]): McNemarResult & { unpaired: number } {
  const inB = new Map(b.map((q) => [q.id, q.correct]));
  let bothCorrect = 0;
  let bothWrong = 0;
  let b01 = 0;
  let b10 = 0;
  let paired = 0;
  for (const q of a) {
    const other = inB.get(q.id);
    if (other === undefined) continue;
    paired++;
    if (q.correct && other) bothCorrect++;
    else if (!q.correct && !other) bothWrong++;
    else if (other) b01++;
    else b10++;
  }
  return { paired, bothCorrect, bothWrong, b01, b10, pValue: mcnemarExactP(b01, b10), unpaired: a.length + b.length - 2 * paired };
}

function delta(a: number | null, b: number | null, questionsA: number, questionsB: number): AccuracyDelta {
  return { a, b, delta: a !== null && b !== null ? b - a : null, questionsA, questionsB };
}

/** Each layer's activation counts as shares of that layer's assignments (0 everywhere for an empty layer). */
export function activationShares(summary: Pick<RunSummary, 'layers'>): number[][] {
  return summary.layers.map((ls) => {
    const total = ls.activationCounts.reduce((x, y) => x + y, 0);
    return ls.activationCounts.map((c) => (total > 0 ? c / total : 0));
  });
}

const own = <T>(table: Record<string, T>, key: string): T | undefined => (Object.hasOwn(table, key) ? table[key] : undefined);

export function compareRuns(A: RunForComparison, B: RunForComparison): RunComparison {
  const sa = A.summary;
  const sb = B.summary;
  const warnings: string[] = [];
  if (sa.model.numLayers !== sb.model.numLayers || sa.model.numExperts !== sb.model.numExperts) {
    throw new Error(
      `${B.runDir}: a model with ${sb.model.numLayers} layers x ${sb.model.numExperts} experts cannot be compared with ${A.runDir}'s ${sa.model.numLayers} x ${sa.model.numExperts}`,
    );
  }
  if (sa.model.path !== sb.model.path) warnings.push(`different models: ${sa.model.path} vs ${sb.model.path}`);
  if (sa.dataset.fingerprint !== sb.dataset.fingerprint || sa.dataset.split !== sb.dataset.split) warnings.push('different data (dataset contents or split)');
  if (sa.shots !== sb.shots) warnings.push(`different shots: ${sa.shots} vs ${sb.shots}`);
  if (A.engine && B.engine && (A.engine.kind !== B.engine.kind || A.engine.dtype !== B.engine.dtype)) {
    warnings.push(
      `different engines: ${A.engine.kind} ${A.engine.dtype} vs ${B.engine.kind} ${B.engine.dtype}; some differences may be numerical, not the intervention's`,
    );
  }
  if ((sa.model.precision ?? 'fp32') !== (sb.model.precision ?? 'fp32'))
    warnings.push(
      `different weight precisions: ${sa.model.precision ?? 'fp32'} vs ${sb.model.precision ?? 'fp32'}; some differences may be the precision's, not the intervention's`,
    );
  if (sa.tokenScope !== sb.tokenScope) warnings.push(`different token scopes: ${sa.tokenScope} vs ${sb.tokenScope}; activation shares are not like for like`);
  if (!sa.complete) warnings.push(`${A.label} is not complete`);
  if (!sb.complete) warnings.push(`${B.label} is not complete`);

  const test = mcnemar(A.questions, B.questions);
  if (test.unpaired > 0) warnings.push(`${test.unpaired} questions were answered by only one run; McNemar uses the ${test.paired} both answered`);
  const { unpaired: _unpaired, ...mcnemarResult } = test;

  const subjects = [...new Set([...Object.keys(sa.accuracy.perSubject), ...Object.keys(sb.accuracy.perSubject)])].sort();
  const perSubject = subjects.map((subject) => {
    // Own keys only: a subject named "constructor" must not find Object.prototype's.
    const x = own(sa.accuracy.perSubject, subject);
    const y = own(sb.accuracy.perSubject, subject);
    return {
      subject,
      category: x?.category ?? y?.category ?? null,
      ...delta(x ? x.accuracy : null, y ? y.accuracy : null, x?.questions ?? 0, y?.questions ?? 0),
    };
  });
  const categories = [...new Set([...Object.keys(sa.accuracy.perCategory), ...Object.keys(sb.accuracy.perCategory)])].sort();
  const perCategory = categories.map((category) => {
    const x = own(sa.accuracy.perCategory, category);
    const y = own(sb.accuracy.perCategory, category);
    return { category, ...delta(x ? x.accuracy : null, y ? y.accuracy : null, x?.questions ?? 0, y?.questions ?? 0) };
  });

  const shareA = activationShares(sa);
  const shareB = activationShares(sb);
  const run = (r: RunForComparison): ComparedRun => ({
    label: r.label,
    runDir: r.runDir,
    questions: r.summary.questions,
    complete: r.summary.complete,
    demo: r.summary.model.demo,
    ...(r.summary.model.demoTrained ? { demoTrained: true } : {}),
    ...(r.summary.model.precision ? { precision: r.summary.model.precision } : {}),
    ...(r.summary.intervention ? { intervention: r.summary.intervention } : {}),
  });
  return {
    a: run(A),
    b: run(B),
    accuracy: {
      micro: delta(sa.accuracy.micro, sb.accuracy.micro, sa.questions, sb.questions),
      macro: delta(sa.accuracy.macro, sb.accuracy.macro, sa.questions, sb.questions),
      perSubject,
      perCategory,
    },
    mcnemar: mcnemarResult,
    activation: {
      numLayers: sa.model.numLayers,
      numExperts: sa.model.numExperts,
      tokenScope: sb.tokenScope,
      shareA,
      shareB,
      deltaShare: shareA.map((row, l) => row.map((v, e) => shareB[l][e] - v)),
    },
    warnings,
    flipped: flippedQuestions(A.questions, B.questions),
    ...calibrationOf(sa, sb),
  };
}

function calibrationOf(sa: RunSummary, sb: RunSummary): { calibration?: RunComparison['calibration'] } {
  const c = compareCalibration(sa, sb);
  return c ? { calibration: c } : {};
}

/** The McNemar result in one sentence, for people (the CLI and the comparison view). */
export function mcnemarInWords(m: McNemarResult, labelA = 'A', labelB = 'B', alpha = 0.05): string {
  if (m.paired === 0) return 'No question was answered by both runs, so they cannot be compared question by question.';
  const disc = m.b01 + m.b10;
  const head = `Of ${m.paired} questions answered by both, ${m.b01} went from wrong (${labelA}) to right (${labelB}) and ${m.b10} from right to wrong`;
  if (disc === 0) return `${head}: the two runs agree on every question (p = 1).`;
  const p = formatP(m.pValue);
  if (m.pValue < alpha) {
    const better = m.b01 > m.b10 ? labelB : labelA;
    return `${head}; McNemar's exact test p = ${p}: a significant difference at the ${alpha} level, in favour of ${better}.`;
  }
  return `${head}; McNemar's exact test p = ${p}: no significant difference at the ${alpha} level.`;
}

export function formatP(p: number): string {
  if (p >= 0.001) return p.toFixed(3);
  return p.toExponential(1);
}
