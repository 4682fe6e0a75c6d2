/**
 * summary.json files come from the workspace, i.e. from anyone: before the editor draws one, its size
 * and every dimension are bounded and every array checked against them, so a file claiming 1e8 experts
 * (or 1e8 subjects) costs a message, not minutes of CPU.
 */
import { MODEL_LIMITS, type RunSummary } from '../shared/protocol';
import { InputError } from '../shared/inputError';

export const MAX_SUMMARY_BYTES = 64 << 20;
const MAX_LAYERS = MODEL_LIMITS.maxLayers;
const MAX_EXPERTS = MODEL_LIMITS.maxExperts;
/** Cells the heatmap draws (layers x experts): beyond this no real model exists and drawing would stall. */
const MAX_CELLS = 1 << 20;
const MAX_SUBJECTS = 10_000;

/** A workspace summary.json that cannot be drawn. */
export class SummaryError extends InputError {}

/** A problem found inside the structure, before the file name is known to the helper that found it. */
class Problem extends Error {}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function numberArray(v: unknown, length: number, where: string, nullable = false): void {
  if (!Array.isArray(v)) throw new Problem(`${where} is not an array`);
  if (v.length !== length) throw new Problem(`${where} has ${v.length} entries, expected ${length}`);
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x === null && nullable) continue;
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new Problem(`${where}[${i}] is ${JSON.stringify(x)}, not a finite number`);
  }
}

const isFraction = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;

/**
 * What no evaluation can produce: an accuracy outside 0..1, more correct answers than questions, a negative
 * or fractional count, subject counts that do not add up to the run's. A summary with any of them was
 * edited or damaged, and comparing or deriving interventions from it would report nonsense as a result.
 */
function checkCounts(s: RunSummary): void {
  const a = s.accuracy;
  for (const k of ['micro', 'macro'] as const)
    if (!isFraction(a[k])) throw new Problem(`field "accuracy.${k}" is ${JSON.stringify(a[k])}, not an accuracy from 0 to 1`);
  if (!s.dataset || typeof s.dataset !== 'object' || typeof s.dataset.split !== 'string') throw new Problem('field "dataset" is missing or has no "split"');
  const table = (field: 'perSubject' | 'perCategory') => {
    const t = a[field] as Record<string, { questions: number; correct: number; accuracy: number }> | undefined;
    if (!t || typeof t !== 'object' || Array.isArray(t)) throw new Problem(`field "accuracy.${field}" is missing or not an object`);
    let questions = 0;
    for (const [name, r] of Object.entries(t)) {
      const at = `accuracy.${field}.${name}`;
      if (!r || typeof r !== 'object') throw new Problem(`field "${at}" is not an object`);
      if (!isInt(r.questions, 0, s.questions))
        throw new Problem(`field "${at}.questions" is ${JSON.stringify(r.questions)}, not a count from 0 to ${s.questions}`);
      if (!isInt(r.correct, 0, r.questions)) throw new Problem(`field "${at}.correct" is ${JSON.stringify(r.correct)}, not a count from 0 to ${r.questions}`);
      if (!isFraction(r.accuracy)) throw new Problem(`field "${at}.accuracy" is ${JSON.stringify(r.accuracy)}, not an accuracy from 0 to 1`);
      questions += r.questions;
    }
    return questions;
  };
  const bySubject = table('perSubject');
  table('perCategory');
  if (Object.keys(a.perSubject).length && bySubject !== s.questions)
    throw new Problem(`field "accuracy.perSubject" counts ${bySubject} questions, field "questions" ${s.questions}`);
}

/** The summary if its shape is sound and bounded; otherwise a SummaryError naming the file and field. */
export function checkSummary(v: unknown, file: string): RunSummary {
  try {
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Problem('not an object');
    const s = v as Partial<RunSummary>;
    const m = s.model;
    if (!m || typeof m !== 'object') throw new Problem('field "model" is missing');
    if (!isInt(m.numLayers, 1, MAX_LAYERS))
      throw new Problem(`field "model.numLayers" is ${JSON.stringify(m.numLayers)}, not an integer from 1 to ${MAX_LAYERS}`);
    if (!isInt(m.numExperts, 1, MAX_EXPERTS))
      throw new Problem(`field "model.numExperts" is ${JSON.stringify(m.numExperts)}, not an integer from 1 to ${MAX_EXPERTS}`);
    if (m.numLayers * m.numExperts > MAX_CELLS) throw new Problem(`fields "model.numLayers" x "model.numExperts" exceed ${MAX_CELLS} cells`);
    if (!isInt(m.topK, 1, m.numExperts)) throw new Problem(`field "model.topK" is ${JSON.stringify(m.topK)}, not an integer from 1 to model.numExperts`);
    if (!isInt(s.questions, 0, Number.MAX_SAFE_INTEGER)) throw new Problem(`field "questions" is ${JSON.stringify(s.questions)}, not a count of questions`);
    if (!s.accuracy || typeof s.accuracy !== 'object') throw new Problem('field "accuracy" is missing');
    checkCounts(s as RunSummary);
    const L = m.numLayers;
    const E = m.numExperts;
    if (!Array.isArray(s.layers) || s.layers.length !== L)
      throw new Problem(`field "layers" has ${Array.isArray(s.layers) ? s.layers.length : 'no'} entries, expected model.numLayers = ${L}`);
    s.layers.forEach((l, i) => {
      const at = `layers[${i}]`;
      if (!l || typeof l !== 'object') throw new Problem(`${at} is not an object`);
      numberArray(l.activationCounts, E, `${at}.activationCounts`);
      numberArray(l.expertAccuracy, E, `${at}.expertAccuracy`, true);
      numberArray(l.expertAccuracyCount, E, `${at}.expertAccuracyCount`);
      if (l.coactivation !== undefined) numberArray(l.coactivation, E * E, `${at}.coactivation`);
      if (l.expertScores !== undefined) {
        const x = l.expertScores;
        if (!x || typeof x !== 'object') throw new Problem(`${at}.expertScores is not an object`);
        numberArray(x.gateWeighted, E, `${at}.expertScores.gateWeighted`);
        numberArray(x.meanOutputNorm, E, `${at}.expertScores.meanOutputNorm`, true);
        numberArray(x.meanSquaredOutputNorm, E, `${at}.expertScores.meanSquaredOutputNorm`, true);
        numberArray(x.outputNormCount, E, `${at}.expertScores.outputNormCount`);
        if (x.weightsCriterion !== undefined) numberArray(x.weightsCriterion, E, `${at}.expertScores.weightsCriterion`);
      }
    });
    const spec = s.subjectSpecialisation ?? {};
    if (typeof spec !== 'object' || Array.isArray(spec)) throw new Problem('field "subjectSpecialisation" is not an object');
    const subjects = Object.keys(spec);
    if (subjects.length > MAX_SUBJECTS) throw new Problem(`field "subjectSpecialisation" has ${subjects.length} subjects (at most ${MAX_SUBJECTS})`);
    for (const subject of subjects) {
      const rows = spec[subject];
      if (!Array.isArray(rows) || rows.length !== L) throw new Problem(`field "subjectSpecialisation.${subject}" does not have ${L} layers`);
      rows.forEach((r, l) => numberArray(r, E, `subjectSpecialisation.${subject}[${l}]`));
    }
    if (s.intervention !== undefined) {
      // The comparison view draws masked and biased experts from it: pairs within the model's shape.
      const iv = s.intervention;
      if (!iv || typeof iv !== 'object' || !Array.isArray(iv.mask) || !Array.isArray(iv.bias))
        throw new Problem('field "intervention" is not {mask: [...], bias: [...]}');
      if (iv.mask.length + iv.bias.length > MAX_CELLS) throw new Problem(`field "intervention" has more than ${MAX_CELLS} entries`);
      const inShape = (x: unknown, n: number) =>
        Array.isArray(x) &&
        x.length === n &&
        isInt(x[0], 0, L - 1) &&
        isInt(x[1], 0, E - 1) &&
        (n === 2 || (typeof x[2] === 'number' && Number.isFinite(x[2])));
      iv.mask.forEach((x, i) => {
        if (!inShape(x, 2)) throw new Problem(`field "intervention.mask[${i}]" is ${JSON.stringify(x)}, not a [layer, expert] pair of this model`);
      });
      iv.bias.forEach((x, i) => {
        if (!inShape(x, 3))
          throw new Problem(`field "intervention.bias[${i}]" is ${JSON.stringify(x)}, not a [layer, expert, finite bias] triple of this model`);
      });
    }
    return s as RunSummary;
  } catch (e) {
    if (e instanceof Problem) throw new SummaryError(file, e.message);
    throw e;
  }
}
