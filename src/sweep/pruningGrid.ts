/**
 * Pruning plans in a sweep SPEC: `"pruning": {"baseline": RUN_DIR, "criteria": ["man", "count"], "ratios": [0.25, 0.5],
 * "mode": "per-layer" | "global", "keepPerLayer": K}` adds one intervention per criterion x ratio, each the mask of
 * the plan derived from the finished baseline run (src/analysis/pruningPlans.ts; the weights criterion from the
 * checkpoint's weight analysis). The masks are fixed when the sweep is planned, so every unit is a plain
 * `eval --mask-experts` run on any backend (local, Ray, Slurm). When experiments are merged, the sweep writes one
 * table: accuracy against experts removed per criterion, with McNemar's exact test against the baseline.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { derivePruningPlan, PRUNE_CRITERIA, PRUNE_CRITERION_LABELS, type PruneCriterion, type PruneMode } from '../analysis/pruningPlans';
import { mcnemar } from '../analysis/compare';
import { readQuestionResults, readSummary, writeJsonAtomic } from '../eval/runFolder';
import type { Intervention, SweepSpec } from './spec';
import type { ExperimentRow } from './plan';
import { readJson } from '../shared/readJson';

export interface PruningGrid {
  /** Absolute path of the finished baseline run the plans are derived from. */
  baseline: string;
  criteria: PruneCriterion[];
  ratios: number[];
  mode: Exclude<PruneMode, 'threshold'>;
  keepPerLayer?: number;
}

/** The field's check (SpecError via fail); paths relative to the SPEC's folder. */
export function parsePruningGrid(v: unknown, specDir: string, fail: (field: string, problem: string) => never): PruningGrid {
  const f = 'pruning';
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    fail(f, 'must be an object like {"baseline": "runs/base", "criteria": ["man"], "ratios": [0.25]}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['baseline', 'criteria', 'ratios', 'mode', 'keepPerLayer'].includes(k))
      fail(`${f}.${k}`, 'is not a pruning field (known: baseline, criteria, ratios, mode, keepPerLayer)');
  if (typeof o.baseline !== 'string' || !o.baseline) fail(`${f}.baseline`, 'must be the folder of a finished evaluation run');
  const baseline = path.resolve(specDir, o.baseline);
  if (!fs.existsSync(path.join(baseline, 'summary.json'))) fail(`${f}.baseline`, `${baseline} has no summary.json: finish that run first`);
  if (!Array.isArray(o.criteria) || o.criteria.length === 0) fail(`${f}.criteria`, `must be a non-empty array of ${PRUNE_CRITERIA.join(', ')}`);
  const criteria = (o.criteria as unknown[]).map((c, i) =>
    PRUNE_CRITERIA.includes(c as PruneCriterion)
      ? (c as PruneCriterion)
      : fail(`${f}.criteria[${i}]`, `must be one of ${PRUNE_CRITERIA.join(', ')}, got ${JSON.stringify(c)}`),
  );
  if (!Array.isArray(o.ratios) || o.ratios.length === 0) fail(`${f}.ratios`, 'must be a non-empty array of fractions in (0, 1)');
  const ratios = (o.ratios as unknown[]).map((r, i) =>
    typeof r === 'number' && r > 0 && r < 1 ? r : fail(`${f}.ratios[${i}]`, `must be a fraction in (0, 1), got ${JSON.stringify(r)}`),
  );
  const mode =
    o.mode === undefined ? 'per-layer' : o.mode === 'per-layer' || o.mode === 'global' ? o.mode : fail(`${f}.mode`, 'must be "per-layer" or "global"');
  const grid: PruningGrid = { baseline, criteria: [...new Set(criteria)], ratios: [...new Set(ratios)], mode };
  if (o.keepPerLayer !== undefined) {
    if (!Number.isInteger(o.keepPerLayer)) fail(`${f}.keepPerLayer`, 'must be an integer');
    grid.keepPerLayer = o.keepPerLayer as number;
  }
  return grid;
}

export function gridInterventionName(criterion: PruneCriterion, ratio: number): string {
  return `prune-${criterion}-${+(ratio * 100).toFixed(2)}pct`;
}

/**
 * The spec with one masking intervention per criterion x ratio added. weightScores is needed when the grid
 * has the weights criterion (the caller reads the weight analysis, which is asynchronous).
 */
export function expandPruningGrid(spec: SweepSpec, grid: PruningGrid, weightScores?: number[][]): SweepSpec {
  const summary = readSummary(grid.baseline);
  if (!summary?.complete) throw new Error(`${grid.baseline}: the pruning baseline run is not complete`);
  const added: Intervention[] = [];
  for (const criterion of grid.criteria) {
    for (const ratio of grid.ratios) {
      const plan = derivePruningPlan(
        summary,
        { criterion, mode: grid.mode, ratio, ...(grid.keepPerLayer !== undefined ? { keepPerLayer: grid.keepPerLayer } : {}) },
        weightScores,
      );
      if (plan.mask.length === 0) continue;
      added.push({
        name: gridInterventionName(criterion, ratio),
        maskExperts: plan.mask.map(([l, e]) => `${l}:${e}`).join(','),
        pruning: { criterion, ratio, removed: plan.mask.length, baseline: grid.baseline },
      });
    }
  }
  const names = new Set(spec.interventions.map((i) => i.name));
  for (const a of added) if (names.has(a.name)) throw new Error(`interventions: "${a.name}" is both given and made by the pruning grid`);
  return { ...spec, interventions: [...spec.interventions, ...added] };
}

export interface PruningTableRow {
  experiment: string;
  criterion: PruneCriterion;
  criterionLabel: string;
  ratio: number;
  expertsRemoved: number;
  questions: number;
  accuracy: number;
  baselineAccuracy: number;
  delta: number;
  mcnemar: { paired: number; b01: number; b10: number; pValue: number };
}

export const PRUNING_TABLE = 'pruning-table.json';

/** The table of the grid's merged experiments (none: null), written next to the sweep summary with a CSV. */
export function writePruningTable(sweepDir: string, experiments: { row: ExperimentRow; intervention: Intervention }[]): PruningTableRow[] | null {
  const grid = experiments.filter((x) => x.intervention.pruning && x.row.status === 'merged');
  if (grid.length === 0) return null;
  const baselines = new Map<string, { accuracy: number; questions: ReturnType<typeof readQuestionResults> }>();
  const rows: PruningTableRow[] = grid.map(({ row, intervention }) => {
    const p = intervention.pruning!;
    let base = baselines.get(p.baseline);
    if (!base) {
      base = { accuracy: readSummary(p.baseline)!.accuracy.micro, questions: readQuestionResults(p.baseline) };
      baselines.set(p.baseline, base);
    }
    const m = mcnemar(base.questions, readQuestionResults(row.runDir));
    return {
      experiment: row.name,
      criterion: p.criterion,
      criterionLabel: PRUNE_CRITERION_LABELS[p.criterion],
      ratio: p.ratio,
      expertsRemoved: p.removed,
      questions: row.questions ?? 0,
      accuracy: row.accuracyMicro ?? 0,
      baselineAccuracy: base.accuracy,
      delta: (row.accuracyMicro ?? 0) - base.accuracy,
      mcnemar: { paired: m.paired, b01: m.b01, b10: m.b10, pValue: m.pValue },
    };
  });
  rows.sort((a, b) => (a.criterion < b.criterion ? -1 : a.criterion > b.criterion ? 1 : 0) || a.expertsRemoved - b.expertsRemoved);
  writeJsonAtomic(path.join(sweepDir, PRUNING_TABLE), { format: 'moe-scope.pruning-table', version: 1, rows });
  const csv = ['experiment,criterion,ratio,experts_removed,questions,accuracy,baseline_accuracy,delta,mcnemar_b01,mcnemar_b10,mcnemar_p'];
  for (const r of rows)
    csv.push(
      [
        r.experiment,
        r.criterion,
        r.ratio,
        r.expertsRemoved,
        r.questions,
        r.accuracy,
        r.baselineAccuracy,
        r.delta,
        r.mcnemar.b01,
        r.mcnemar.b10,
        r.mcnemar.pValue,
      ].join(','),
    );
  fs.writeFileSync(path.join(sweepDir, 'pruning-table.csv'), csv.join('\n') + '\n');
  return rows;
}

export function readPruningTable(sweepDir: string): PruningTableRow[] | null {
  const file = path.join(sweepDir, PRUNING_TABLE);
  if (!fs.existsSync(file)) return null;
  return (readJson(file, { within: sweepDir }) as { rows: PruningTableRow[] }).rows;
}

export function describePruningTable(rows: PruningTableRow[]): string[] {
  const lines = ['pruning grid: accuracy vs experts removed (McNemar against the baseline)'];
  for (const r of rows)
    lines.push(
      `  ${r.criterion.padEnd(7)} ${String(+(r.ratio * 100).toFixed(2)).padStart(5)}%  ${String(r.expertsRemoved).padStart(5)} removed  accuracy ${(100 * r.accuracy).toFixed(1)}% (${r.delta >= 0 ? '+' : ''}${(100 * r.delta).toFixed(1)} pt)  b01 ${r.mcnemar.b01} b10 ${r.mcnemar.b10} p ${r.mcnemar.pValue.toPrecision(3)}`,
    );
  return lines;
}
