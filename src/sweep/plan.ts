/**
 * A sweep's plan: its experiments and units of work, and where each writes. Written to SWEEP_DIR/sweep.json
 * so that every backend (this process, the Ray driver in python/, Slurm array tasks) runs the same units
 * with the same command lines.
 *
 *   SWEEP_DIR/sweep.json                        the plan
 *   SWEEP_DIR/<experiment>/shards/<i>-of-<N>/   one unit: an eval run folder of shard i/N (its own lock)
 *   SWEEP_DIR/<experiment>/run/                 the merged run, once every shard is finished
 *   SWEEP_DIR/sweep-summary.json                accuracy and never-activated counts per merged experiment
 */
import { writePruningTable } from './pruningGrid';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TokenScope } from '../shared/protocol';
import { readManifest, readSummary, writeJsonAtomic } from '../eval/runFolder';
import type { EngineName, Intervention, SweepModel, SweepSpec } from './spec';

export interface SweepExperiment {
  name: string;
  model: SweepModel;
  engine: EngineName;
  shots: number;
  tokenScope: TokenScope;
  intervention: Intervention;
  /** The merged run folder. */
  runDir: string;
  /** Ids of its units, in shard order. */
  units: number[];
}

export interface SweepUnit {
  id: number;
  experiment: string;
  shard: number;
  shards: number;
  dir: string;
  /** Arguments of `moe-scope eval` for this unit (after the CLI path). */
  evalArgs: string[];
  cpus: number;
  gpus: number;
}

export interface SweepPlan {
  format: 'moe-scope.sweep';
  version: 1;
  specFile: string;
  sweepDir: string;
  /** The Node binary and CLI bundle every unit runs (the same paths on every machine: a shared filesystem). */
  node: string;
  cli: string;
  resources: SweepSpec['resources'];
  experiments: SweepExperiment[];
  units: SweepUnit[];
}

export const PLAN_FILE = 'sweep.json';
export const SWEEP_SUMMARY = 'sweep-summary.json';

export function experimentName(model: string, engine: string, shots: number, scope: string, intervention: string): string {
  return `${model}.${engine}.${shots}shot.${scope}.${intervention}`;
}

export function buildPlan(spec: SweepSpec, sweepDir: string, runtime: { node: string; cli: string }): SweepPlan {
  const dir = path.resolve(sweepDir);
  const experiments: SweepExperiment[] = [];
  const units: SweepUnit[] = [];
  for (const model of spec.models)
    for (const engine of spec.engines)
      for (const shots of spec.shots)
        for (const tokenScope of spec.tokenScopes)
          for (const intervention of spec.interventions) {
            const name = experimentName(model.name, engine, shots, tokenScope, intervention.name);
            const expDir = path.join(dir, name);
            const exp: SweepExperiment = { name, model, engine, shots, tokenScope, intervention, runDir: path.join(expDir, 'run'), units: [] };
            for (let shard = 0; shard < spec.shards; shard++) {
              const unitDir = path.join(expDir, 'shards', `${shard}-of-${spec.shards}`);
              const evalArgs = [
                'eval',
                '--model',
                model.path,
                '--data',
                spec.data,
                '--out',
                unitDir,
                '--split',
                spec.split,
                '--shots',
                String(shots),
                '--token-scope',
                tokenScope,
                '--batch-size',
                String(spec.batchSize),
                '--limit',
                String(spec.limit),
                '--provider',
                spec.provider,
                '--shard',
                `${shard}/${spec.shards}`,
                ...(spec.subjects ? ['--subjects', spec.subjects.join(',')] : []),
                ...(spec.cache ? ['--cache', spec.cache] : []),
                '--engine',
                engine,
                ...(engine === 'pytorch' && spec.python ? ['--python', spec.python] : []),
                ...(intervention.maskExperts ? ['--mask-experts', intervention.maskExperts] : []),
                ...(intervention.routerBias ? ['--router-bias', intervention.routerBias] : []),
                ...(intervention.evalArgs ?? []),
              ];
              const gpus = spec.resources.gpus ?? (engine === 'pytorch' ? 1 : 0);
              exp.units.push(units.length);
              units.push({ id: units.length, experiment: name, shard, shards: spec.shards, dir: unitDir, evalArgs, cpus: spec.resources.cpus, gpus });
            }
            experiments.push(exp);
          }
  return {
    format: 'moe-scope.sweep',
    version: 1,
    specFile: spec.file,
    sweepDir: dir,
    node: runtime.node,
    cli: runtime.cli,
    resources: spec.resources,
    experiments,
    units,
  };
}

export function writePlan(plan: SweepPlan): string {
  fs.mkdirSync(plan.sweepDir, { recursive: true });
  const file = path.join(plan.sweepDir, PLAN_FILE);
  writeJsonAtomic(file, plan);
  return file;
}

export function readPlan(sweepDir: string): SweepPlan {
  const file = path.join(path.resolve(sweepDir), PLAN_FILE);
  if (!fs.existsSync(file)) throw new Error(`${file}: no sweep plan here (run moe-scope sweep SPEC --out ${sweepDir} first)`);
  const plan = JSON.parse(fs.readFileSync(file, 'utf8')) as SweepPlan;
  if (plan.format !== 'moe-scope.sweep') throw new Error(`${file}: field "format" is ${JSON.stringify(plan.format)}, not "moe-scope.sweep"`);
  return plan;
}

/** A unit is finished when its shard run says so (summary.json complete) for the same shard. */
export function unitFinished(unit: SweepUnit): boolean {
  try {
    const m = readManifest(unit.dir);
    const s = readSummary(unit.dir);
    return !!m?.shard && m.shard.index === unit.shard && m.shard.count === unit.shards && s?.complete === true;
  } catch {
    return false;
  }
}

export function experimentMerged(exp: SweepExperiment): boolean {
  try {
    return readSummary(exp.runDir)?.complete === true;
  } catch {
    return false;
  }
}

export interface ExperimentRow {
  name: string;
  model: string;
  engine: string;
  shots: number;
  tokenScope: string;
  intervention: string;
  status: 'merged' | 'running' | 'pending';
  unitsFinished: number;
  units: number;
  questions?: number;
  accuracyMicro?: number;
  accuracyMacro?: number;
  neverActivatedTotal?: number;
  runDir: string;
}

/** One row per experiment (what the sweep summary file and the editor's sweep view show). */
export function sweepRows(plan: SweepPlan): ExperimentRow[] {
  return plan.experiments.map((e) => {
    const finished = e.units.filter((id) => unitFinished(plan.units[id])).length;
    const row: ExperimentRow = {
      name: e.name,
      model: e.model.name,
      engine: e.engine,
      shots: e.shots,
      tokenScope: e.tokenScope,
      intervention: e.intervention.name,
      status: experimentMerged(e) ? 'merged' : finished > 0 || e.units.some((id) => fs.existsSync(plan.units[id].dir)) ? 'running' : 'pending',
      unitsFinished: finished,
      units: e.units.length,
      runDir: e.runDir,
    };
    if (row.status === 'merged') {
      const s = readSummary(e.runDir)!;
      Object.assign(row, {
        questions: s.questions,
        accuracyMicro: s.accuracy.micro,
        accuracyMacro: s.accuracy.macro,
        neverActivatedTotal: s.neverActivatedTotal,
      });
    }
    return row;
  });
}

export function writeSweepSummary(plan: SweepPlan): ExperimentRow[] {
  const rows = sweepRows(plan);
  writeJsonAtomic(path.join(plan.sweepDir, SWEEP_SUMMARY), { format: 'moe-scope.sweep-summary', version: 1, specFile: plan.specFile, experiments: rows });
  // A SPEC's pruning grid: one table of accuracy vs experts removed per criterion (pruningGrid.ts).
  writePruningTable(
    plan.sweepDir,
    plan.experiments.map((e, i) => ({ row: rows[i]!, intervention: e.intervention })),
  );
  return rows;
}
