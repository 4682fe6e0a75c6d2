/**
 * A sweep's plan: its experiments and units of work, and where each writes. Written to SWEEP_DIR/sweep.json
 * so that every backend (this process, the Ray driver in python/, Slurm array tasks) runs the same units
 * with the same command lines.
 *
 *   SWEEP_DIR/sweep.json                        the plan
 *   SWEEP_DIR/<experiment>/shards/<i>-of-<N>.<key>/   one unit: an eval run folder of shard i/N (its own lock);
 *                                               <key> hashes the unit's full eval options, so a changed
 *                                               SPEC runs its changed units afresh instead of reusing old ones
 *   SWEEP_DIR/<experiment>/run/                 the merged run, once every shard is finished
 *   SWEEP_DIR/sweep-summary.json                accuracy and never-activated counts per merged experiment
 */
import * as crypto from 'node:crypto';
import { writePruningTable } from './pruningGrid';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TokenScope } from '../shared/protocol';
import { readManifest, readSummary, writeJsonAtomic } from '../eval/runFolder';
import { InputError } from '../shared/inputError';
import { readJson } from '../shared/readJson';
import { entryExists, isInside } from '../shared/safeFiles';
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

/** A short hash of a unit's full eval options (everything but its folder): the unit's identity. */
export function unitKey(options: string[]): string {
  return crypto.createHash('sha256').update(JSON.stringify(options)).digest('hex').slice(0, 12);
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
              const options = [
                '--model',
                model.path,
                '--data',
                spec.data,
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
                // Only when chosen: auto units keep the keys (and so the finished shards) they had before the field existed.
                ...(spec.precision !== 'auto' ? ['--precision', spec.precision] : []),
                '--engine',
                engine,
                ...(engine === 'pytorch' && spec.python ? ['--python', spec.python] : []),
                ...(intervention.maskExperts ? ['--mask-experts', intervention.maskExperts] : []),
                ...(intervention.routerBias ? ['--router-bias', intervention.routerBias] : []),
                ...(intervention.evalArgs ?? []),
              ];
              const unitDir = path.join(expDir, 'shards', `${shard}-of-${spec.shards}.${unitKey(options)}`);
              const evalArgs = ['eval', '--out', unitDir, ...options];
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

/** A sweep.json that cannot be used: names the file and the field. */
export class SweepPlanError extends InputError {}

const MAX_PLAN_BYTES = 64 << 20;

/**
 * Reads SWEEP_DIR/sweep.json and checks what the sweep will write from it: every experiment's run folder
 * and every unit's folder must lie inside SWEEP_DIR (a crafted plan must not make a merge replace the
 * records of a folder elsewhere).
 */
export function readPlan(sweepDir: string): SweepPlan {
  const dir = path.resolve(sweepDir);
  const file = path.join(dir, PLAN_FILE);
  if (!entryExists(file)) throw new SweepPlanError(file, `no sweep plan here (run moe-scope sweep SPEC --out ${sweepDir} first)`);
  const plan = readJson(file, { maxBytes: MAX_PLAN_BYTES, error: SweepPlanError, within: dir }) as SweepPlan;
  if (!plan || typeof plan !== 'object' || Array.isArray(plan)) throw new SweepPlanError(file, 'not a sweep plan (expected an object)');
  if (plan.format !== 'moe-scope.sweep') throw new SweepPlanError(file, `field "format" is ${JSON.stringify(plan.format)}, not "moe-scope.sweep"`);
  if (!Array.isArray(plan.experiments) || !Array.isArray(plan.units)) throw new SweepPlanError(file, 'fields "experiments" and "units" must be lists');
  if (typeof plan.sweepDir !== 'string' || path.resolve(plan.sweepDir) !== dir)
    throw new SweepPlanError(file, `field "sweepDir" is ${JSON.stringify(plan.sweepDir)}, not this folder ${dir}`);
  const inside = (field: string, p: unknown) => {
    if (typeof p !== 'string' || !path.isAbsolute(p) || !isInside(dir, path.resolve(p)) || path.resolve(p) === dir)
      throw new SweepPlanError(file, `field "${field}" is ${JSON.stringify(p)}, not a folder inside the sweep folder ${dir}`);
  };
  plan.experiments.forEach((e, i) => {
    inside(`experiments[${i}].runDir`, e?.runDir);
    if (!Array.isArray(e.units) || !e.units.every((u) => Number.isInteger(u) && plan.units[u]?.experiment === e.name))
      throw new SweepPlanError(file, `field "experiments[${i}].units" does not list units of this experiment`);
  });
  plan.units.forEach((u, i) => {
    inside(`units[${i}].dir`, u?.dir);
    if (u.id !== i) throw new SweepPlanError(file, `field "units[${i}].id" is ${JSON.stringify(u.id)}, not ${i}`);
  });
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

/**
 * An experiment is merged when its run folder holds a complete summary merged from exactly this plan's
 * unit folders (a run merged from the units of an earlier, different SPEC is not this experiment's).
 */
export function experimentMerged(exp: SweepExperiment, plan: SweepPlan): boolean {
  try {
    const from = readManifest(exp.runDir)?.mergedFrom?.map((d) => path.resolve(d));
    const want = exp.units.map((id) => path.resolve(plan.units[id].dir));
    return JSON.stringify(from) === JSON.stringify(want) && readSummary(exp.runDir)?.complete === true;
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
      status: experimentMerged(e, plan) ? 'merged' : finished > 0 || e.units.some((id) => fs.existsSync(plan.units[id].dir)) ? 'running' : 'pending',
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
