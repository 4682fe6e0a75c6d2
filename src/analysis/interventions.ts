/**
 * Router interventions (expert ablation and router steering) as pure data: parsing the command line's
 * forms, normalising, validating against a model's shape, turning them into per-layer bias rows for the
 * engines, and deriving them from a finished run's summary. No I/O: the CLI, the editor and sweeps call
 * these with text they have read themselves and a label saying where it came from.
 */
import type { LayerSummary, RouterIntervention, RunSummary } from '../shared/protocol';
import { derivePruningPlan, describePlanSpec, PruningPlanError, type PruningPlanSpec } from './pruningPlans';

export class InterventionError extends Error {}

export interface RouterShape {
  numLayers: number;
  numExperts: number;
  topK: number;
}

export function isEmptyIntervention(iv: RouterIntervention | undefined | null): boolean {
  return !iv || ((iv.mask?.length ?? 0) === 0 && (iv.bias?.length ?? 0) === 0);
}

/** `--mask-experts L:E,L:E,...` -> [layer, expert] pairs. `source` names the option or file in messages. */
export function parseMaskSpec(spec: string, source = '--mask-experts'): [number, number][] {
  const parts = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0) throw new InterventionError(`${source}: expected LAYER:EXPERT pairs separated by commas, e.g. 0:3,5:17; got "${spec}"`);
  return parts.map((p) => {
    const m = /^(\d+):(\d+)$/.exec(p);
    if (!m) throw new InterventionError(`${source}: "${p}" is not LAYER:EXPERT (two non-negative integers, e.g. 5:17)`);
    return [Number(m[1]), Number(m[2])];
  });
}

/** The `--router-bias FILE.json` format: {"layer": {"expert": bias}}. `file` names the file in messages. */
export function parseBiasJson(text: string, file: string): [number, number, number][] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new InterventionError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (!isPlainObject(value)) throw new InterventionError(`${file}: expected an object {"layer": {"expert": bias}}, got ${describe(value)}`);
  const out: [number, number, number][] = [];
  for (const [layerKey, experts] of Object.entries(value)) {
    if (!/^\d+$/.test(layerKey)) throw new InterventionError(`${file}: key "${layerKey}" is not a layer number`);
    if (!isPlainObject(experts)) throw new InterventionError(`${file}: layer ${layerKey}: expected an object {"expert": bias}, got ${describe(experts)}`);
    for (const [expertKey, bias] of Object.entries(experts)) {
      if (!/^\d+$/.test(expertKey)) throw new InterventionError(`${file}: layer ${layerKey}: key "${expertKey}" is not an expert number`);
      if (typeof bias !== 'number' || !Number.isFinite(bias)) {
        throw new InterventionError(`${file}: layer ${layerKey}, expert ${expertKey}: bias must be a finite number, got ${describe(bias)}`);
      }
      // Router logits are float32 in both engines: a bias beyond its range would become infinite there.
      if (!Number.isFinite(Math.fround(bias)))
        throw new InterventionError(
          `${file}: layer ${layerKey}, expert ${expertKey}: bias ${bias} is beyond float32's range (|b| < 3.4e38), which router logits use`,
        );
      out.push([Number(layerKey), Number(expertKey), bias]);
    }
  }
  return out;
}

/** Sorted, deduplicated, zero biases dropped; a bias on a masked expert is dropped (it is never chosen). */
export function normalizeIntervention(iv: {
  mask?: [number, number][];
  bias?: [number, number, number][];
  description?: string;
  baselineRun?: string;
}): RouterIntervention {
  const maskKeys = new Set<string>();
  const mask: [number, number][] = [];
  for (const [l, e] of iv.mask ?? []) {
    const k = `${l}:${e}`;
    if (!maskKeys.has(k)) {
      maskKeys.add(k);
      mask.push([l, e]);
    }
  }
  mask.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const biasByKey = new Map<string, [number, number, number]>();
  for (const [l, e, b] of iv.bias ?? []) {
    const k = `${l}:${e}`;
    if (maskKeys.has(k)) continue;
    const prev = biasByKey.get(k);
    biasByKey.set(k, [l, e, (prev?.[2] ?? 0) + b]);
  }
  const bias = [...biasByKey.values()].filter((x) => x[2] !== 0).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: RouterIntervention = { mask, bias };
  if (iv.description) out.description = iv.description;
  if (iv.baselineRun) out.baselineRun = iv.baselineRun;
  return out;
}

/**
 * Checks an intervention against a model: layers and experts in range, and at least top_k experts left
 * unmasked in every layer (the router must still be able to choose k experts). `source` prefixes messages.
 * python/moe_scope_worker/interventions.py validates the same way, message for message: both run the
 * cases of test/support/intervention-cases.json.
 */
export function validateIntervention(iv: RouterIntervention, shape: RouterShape, source = 'intervention'): void {
  const { numLayers: L, numExperts: E, topK: K } = shape;
  // It may arrive as JSON from another process or a manifest: check the shape before reading it.
  if (!iv || !Array.isArray(iv.mask) || !Array.isArray(iv.bias))
    throw new InterventionError(`${source}: expected {mask: [[layer, expert], ...], bias: [[layer, expert, bias], ...]}`);
  iv.mask.forEach((m, i) => {
    if (!Array.isArray(m) || m.length !== 2) throw new InterventionError(`${source}: mask[${i}] must be a [layer, expert] pair, got ${JSON.stringify(m)}`);
  });
  iv.bias.forEach((b, i) => {
    if (!Array.isArray(b) || b.length !== 3)
      throw new InterventionError(`${source}: bias[${i}] must be a [layer, expert, bias] triple, got ${JSON.stringify(b)}`);
  });
  const check = (field: string, l: number, e: number) => {
    if (!Number.isInteger(l) || l < 0 || l >= L)
      throw new InterventionError(`${source}: ${field}: layer ${l} does not exist (the model has layers 0..${L - 1})`);
    if (!Number.isInteger(e) || e < 0 || e >= E)
      throw new InterventionError(`${source}: ${field}: expert ${e} of layer ${l} does not exist (the model has experts 0..${E - 1})`);
  };
  for (const [l, e] of iv.mask) check('mask', l, e);
  for (const [l, e, b] of iv.bias) {
    check('bias', l, e);
    if (!Number.isFinite(b)) throw new InterventionError(`${source}: bias: layer ${l}, expert ${e}: bias must be a finite number, got ${b}`);
  }
  // Distinct experts: a repeated mask entry removes its expert once (the engines' rows agree).
  const masked = Array.from({ length: L }, () => new Set<number>());
  for (const [l, e] of iv.mask) masked[l].add(e);
  masked.forEach(({ size: n }, l) => {
    if (E - n < K) {
      throw new InterventionError(
        `${source}: layer ${l} would keep ${E - n} of ${E} experts, fewer than the ${K} the router chooses per token; refusing to mask ${n === E ? 'every expert of a layer' : 'that many'}`,
      );
    }
  });
}

export function maskedPerLayer(iv: RouterIntervention, numLayers: number): number[] {
  const n = new Array<number>(numLayers).fill(0);
  // Distinct experts: a mask given with repeats (before normalizeIntervention) masks each expert once.
  const seen = new Set<string>();
  for (const [l, e] of iv.mask) {
    if (l >= 0 && l < numLayers && !seen.has(`${l}:${e}`)) n[l]++;
    seen.add(`${l}:${e}`);
  }
  return n;
}

export function biasedPerLayer(iv: RouterIntervention, numLayers: number): number[] {
  const n = new Array<number>(numLayers).fill(0);
  for (const [l] of iv.bias) if (l >= 0 && l < numLayers) n[l]++;
  return n;
}

/** Per layer, the values added to the router logits: -Infinity for masked experts, the bias otherwise. */
export function interventionRows(iv: RouterIntervention, shape: Pick<RouterShape, 'numLayers' | 'numExperts'>): Float32Array[] {
  const rows = Array.from({ length: shape.numLayers }, () => new Float32Array(shape.numExperts));
  for (const [l, e, b] of iv.bias) rows[l][e] += b;
  for (const [l, e] of iv.mask) rows[l][e] = -Infinity;
  return rows;
}

/** A short stable key (for caches keyed by intervention). */
export function interventionKey(iv: RouterIntervention | undefined | null): string {
  if (isEmptyIntervention(iv)) return '';
  return JSON.stringify([iv!.mask, iv!.bias]);
}

/** One line for logs and the manifest's readers. */
export function describeIntervention(iv: RouterIntervention, numLayers: number): string {
  if (isEmptyIntervention(iv)) return 'no intervention';
  const parts: string[] = [];
  if (iv.mask.length) parts.push(`${iv.mask.length} experts masked in ${maskedPerLayer(iv, numLayers).filter((n) => n > 0).length} layers`);
  if (iv.bias.length) parts.push(`${iv.bias.length} router biases in ${biasedPerLayer(iv, numLayers).filter((n) => n > 0).length} layers`);
  return iv.description ? `${iv.description}: ${parts.join(', ')}` : parts.join(', ');
}

// -------------------------------------------------------------------------------------------------
// Derivation from a baseline run (moe-scope experiment, the editor's "New experiment", sweeps)

export type ExperimentSpec =
  /** Mask every expert the baseline never activated in its token scope. */
  | { kind: 'prune-never-activated' }
  /** Mask every expert with fewer than `count` activations (in scope) in the baseline. */
  | { kind: 'prune-below-count'; count: number }
  /** Mask exactly these experts. */
  | { kind: 'prune'; experts: [number, number][] }
  /**
   * Per layer, add `bias` to the router logits of the top `fraction` (0 < fraction <= 1) of experts by
   * per-expert accuracy in the baseline (experts with no accuracy, i.e. never used at the answer
   * position, are not ranked; at least one expert per layer that has any is steered).
   */
  | { kind: 'steer-top-accuracy'; fraction: number; bias: number }
  /** Mask the experts a pruning plan picks by a score (pruningPlans.ts); weightScores for the 'weights' criterion. */
  | { kind: 'prune-by'; plan: PruningPlanSpec; weightScores?: number[][] };

export function describeSpec(spec: ExperimentSpec): string {
  switch (spec.kind) {
    case 'prune-never-activated':
      return 'prune never-activated experts';
    case 'prune-below-count':
      return `prune experts with fewer than ${spec.count} activations`;
    case 'prune':
      return `prune ${spec.experts.length} chosen experts`;
    case 'steer-top-accuracy':
      return `steer toward the top ${formatFraction(spec.fraction)} experts by accuracy (bias ${spec.bias})`;
    case 'prune-by':
      return describePlanSpec(spec.plan);
  }
}

/**
 * The intervention an experiment applies, from the baseline run's summary. Throws InterventionError
 * when the result is empty or would leave a layer with fewer than top_k experts.
 */
export function deriveIntervention(
  summary: Pick<RunSummary, 'model' | 'layers' | 'tokenScope'>,
  spec: ExperimentSpec,
  baselineLabel = 'the baseline run',
): RouterIntervention {
  const shape = { numLayers: summary.model.numLayers, numExperts: summary.model.numExperts, topK: summary.model.topK };
  if (summary.layers.length !== shape.numLayers)
    throw new InterventionError(`${baselineLabel}: summary has ${summary.layers.length} layers, the model ${shape.numLayers}`);
  let mask: [number, number][] = [];
  let bias: [number, number, number][] = [];
  switch (spec.kind) {
    case 'prune-never-activated':
      mask = summary.layers.flatMap((ls) => ls.neverActivated.map((e) => [ls.layer, e] as [number, number]));
      break;
    case 'prune-below-count':
      if (!Number.isInteger(spec.count) || spec.count < 1)
        throw new InterventionError(`prune-below-count: count must be a positive integer, got ${spec.count}`);
      mask = summary.layers.flatMap((ls) => ls.activationCounts.flatMap((c, e) => (c < spec.count ? [[ls.layer, e] as [number, number]] : [])));
      break;
    case 'prune':
      mask = spec.experts;
      break;
    case 'steer-top-accuracy':
      if (!(spec.fraction > 0 && spec.fraction <= 1)) throw new InterventionError(`steer-top-accuracy: the fraction must be in (0, 1], got ${spec.fraction}`);
      if (!Number.isFinite(spec.bias) || spec.bias === 0)
        throw new InterventionError(`steer-top-accuracy: the bias must be a non-zero finite number, got ${spec.bias}`);
      bias = summary.layers.flatMap((ls) => topAccuracyExperts(ls, spec.fraction).map((e) => [ls.layer, e, spec.bias] as [number, number, number]));
      break;
    case 'prune-by':
      try {
        mask = derivePruningPlan(summary, spec.plan, spec.weightScores).mask;
      } catch (e) {
        if (e instanceof PruningPlanError) throw new InterventionError(`${baselineLabel}: ${e.message}`);
        throw e;
      }
      break;
  }
  const iv = normalizeIntervention({ mask, bias, description: `${describeSpec(spec)} of ${baselineLabel} (${summary.tokenScope} scope)` });
  if (isEmptyIntervention(iv)) throw new InterventionError(`${baselineLabel}: "${describeSpec(spec)}" selects no experts, so there is nothing to compare`);
  validateIntervention(iv, shape, `${describeSpec(spec)} of ${baselineLabel}`);
  return iv;
}

/** Experts ranked by accuracy (ties: more questions first, then lower id), the top ceil(fraction * n). */
export function topAccuracyExperts(ls: Pick<LayerSummary, 'expertAccuracy' | 'expertAccuracyCount'>, fraction: number): number[] {
  const ranked = ls.expertAccuracy
    .map((a, e) => ({ e, a, n: ls.expertAccuracyCount[e] ?? 0 }))
    .filter((x): x is { e: number; a: number; n: number } => x.a !== null && Number.isFinite(x.a))
    .sort((x, y) => y.a - x.a || y.n - x.n || x.e - y.e);
  if (ranked.length === 0) return [];
  return ranked.slice(0, Math.max(1, Math.ceil(fraction * ranked.length))).map((x) => x.e);
}

function formatFraction(f: number): string {
  return `${+(f * 100).toFixed(2)}%`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return `${typeof v} ${String(v)}`;
}
