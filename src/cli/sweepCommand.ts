/** `moe-scope sweep`: run a SPEC's experiments locally, on a Ray cluster, or as Slurm jobs. */
import { parseArgs } from 'node:util';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError, type CliContext } from './command';
import { readSpec, SpecError } from '../sweep/spec';
import { expandPruningGrid, describePruningTable, readPruningTable } from '../sweep/pruningGrid';
import { weightScoresFor } from './pruneBy';
import { readManifest } from '../eval/runFolder';
import { buildPlan, readPlan, writePlan, writeSweepSummary, type ExperimentRow, type SweepPlan } from '../sweep/plan';
import { mergeExperiment, runLocal } from '../sweep/local';
import { writeSlurmScripts } from '../sweep/slurm';
import { precisionOption } from './modelCommands';
import type { SweepSpec } from '../sweep/spec';

export const SWEEP_USAGE =
  'sweep SPEC.json --out SWEEP_DIR [--precision auto|fp32|fp16|bf16|int8|int4] [--backend local|ray|slurm] [--ray-address ADDR] [--python PY] [--max-retries 3] [--submit]\n' +
  '      Run every experiment of SPEC (models x engines x shots x token scopes x interventions), each in\n' +
  '      SPEC.shards units (eval --shard), and merge each experiment when its shards are done. A re-run skips\n' +
  '      finished units. ray: python/moe_scope_ray.py on --ray-address (or a local Ray); slurm: writes an sbatch\n' +
  '      array and a dependent merge job (--submit submits them, otherwise prints the commands).\n' +
  '  sweep --merge --out SWEEP_DIR [--experiment NAME]\n' +
  '      Merge the experiments whose shards are all finished; write SWEEP_DIR/sweep-summary.json.';

/** The repository (or installed package) folder that holds dist/cli.js and python/. */
function packageRoot(cli: string): string {
  return path.dirname(path.dirname(cli));
}

function currentCli(): string {
  const cli = process.env.MOE_SCOPE_CLI ?? process.argv[1];
  if (!cli || !fs.existsSync(cli)) throw new Error(`cannot find the moe-scope CLI bundle to run units with (${cli ?? 'no argv[1]'}); set MOE_SCOPE_CLI`);
  return path.resolve(cli);
}

function printRows(rows: ExperimentRow[], ctx: CliContext, plan?: SweepPlan): void {
  const table = plan && readPruningTable(plan.sweepDir);
  if (table) for (const line of describePruningTable(table)) ctx.err(line);
  for (const r of rows) {
    const res =
      r.status === 'merged'
        ? `${r.questions} questions  accuracy ${(100 * r.accuracyMicro!).toFixed(1)}%  never-activated ${r.neverActivatedTotal}`
        : `${r.unitsFinished}/${r.units} shards finished`;
    ctx.err(`  ${r.status.padEnd(7)}  ${r.name}  ${res}`);
  }
}

export async function sweepCommand(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      backend: { type: 'string', default: 'local' },
      'ray-address': { type: 'string' },
      python: { type: 'string' },
      submit: { type: 'boolean', default: false },
      merge: { type: 'boolean', default: false },
      experiment: { type: 'string' },
      'max-retries': { type: 'string', default: '3' },
      precision: { type: 'string' },
    },
  });
  if (!values.out) throw new UsageError('--out SWEEP_DIR is required');
  const precision = values.precision === undefined ? undefined : precisionOption(values.precision);
  if (precision && values.merge) throw new UsageError('--precision applies to running a SPEC, not to --merge (a merge keeps the precision its shards ran at)');
  const out = path.resolve(values.out);

  if (values.merge) {
    const plan = readPlan(out);
    const exps = values.experiment ? plan.experiments.filter((e) => e.name === values.experiment) : plan.experiments;
    if (values.experiment && exps.length === 0)
      throw new UsageError(`--experiment ${values.experiment}: not an experiment of ${out} (${plan.experiments.map((e) => e.name).join(', ')})`);
    let allMerged = true;
    for (const e of exps) {
      const m = mergeExperiment(plan, e);
      allMerged &&= m.merged;
      ctx.err(m.message);
    }
    writeSweepSummary(plan);
    return allMerged ? 0 : 1;
  }

  if (positionals.length !== 1) throw new UsageError('give exactly one SPEC.json');
  const backend = values.backend!;
  if (!['local', 'ray', 'slurm'].includes(backend)) throw new UsageError(`--backend must be local, ray or slurm, not "${backend}"`);
  if (values['ray-address'] && backend !== 'ray') throw new UsageError('--ray-address only applies to --backend ray');
  if (values.submit && backend !== 'slurm') throw new UsageError('--submit only applies to --backend slurm');
  const maxRetries = Number(values['max-retries']);
  if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new UsageError(`--max-retries must be a non-negative integer, got "${values['max-retries']}"`);
  let spec;
  try {
    spec = readSpec(positionals[0]);
  } catch (e) {
    if (e instanceof SpecError) {
      ctx.err(`moe-scope sweep: ${e.message}`);
      return 2;
    }
    throw e;
  }
  spec = withPrecision(spec, precision);
  const grid = spec.pruning;
  if (grid) {
    const weights = grid.criteria.includes('weights')
      ? await weightScoresFor(readManifest(grid.baseline)?.model.path ?? '', spec.cache ?? undefined)
      : undefined;
    spec = expandPruningGrid(spec, grid, weights);
    ctx.err(`sweep: the pruning grid adds ${spec.interventions.filter((i) => i.pruning).length} masking interventions from ${grid.baseline}`);
  }
  const plan = buildPlan(spec, out, { node: process.execPath, cli: currentCli() });
  const planFile = writePlan(plan);
  ctx.err(`sweep: ${plan.experiments.length} experiments x ${spec.shards} shards = ${plan.units.length} units; plan in ${planFile}`);

  if (backend === 'local') {
    const ac = new AbortController();
    const onSignal = () => ac.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const r = await runLocal(plan, (l) => ctx.err(l), ac.signal);
      const rows = writeSweepSummary(plan);
      printRows(rows, ctx, plan);
      if (ac.signal.aborted) return 130;
      return r.failed.length || rows.some((x) => x.status !== 'merged') ? 1 : 0;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
  if (backend === 'slurm') return slurm(plan, values.submit!, ctx);
  return ray(plan, values['ray-address'], values.python, maxRetries, ctx);
}

/** The SPEC with the command line's --precision; a SPEC that names another precision is refused, not overridden. */
export function withPrecision(spec: SweepSpec, precision: SweepSpec['precision'] | undefined): SweepSpec {
  if (precision === undefined || precision === spec.precision) return spec;
  if (spec.precision !== 'auto')
    throw new UsageError(`--precision ${precision} contradicts ${spec.file}'s field "precision" (${spec.precision}); change one of them`);
  return { ...spec, precision };
}

function slurm(plan: SweepPlan, submit: boolean, ctx: CliContext): number {
  const s = writeSlurmScripts(plan);
  ctx.err(`slurm: wrote ${s.unitsScript} (array of ${plan.units.length} units) and ${s.mergeScript} (the merge, after the whole array)`);
  if (!submit) {
    ctx.out(s.submitCommands.join('\n'));
    return 0;
  }
  const units = spawnSync('sbatch', ['--parsable', s.unitsScript], { encoding: 'utf8' });
  if (units.error || units.status !== 0) {
    ctx.err(`slurm: sbatch ${s.unitsScript} failed: ${units.error?.message ?? units.stderr.trim()}`);
    return 1;
  }
  const jobId = units.stdout.trim().split(';')[0];
  const merge = spawnSync('sbatch', ['--parsable', `--dependency=afterok:${jobId}`, s.mergeScript], { encoding: 'utf8' });
  if (merge.error || merge.status !== 0) {
    ctx.err(`slurm: units submitted as job ${jobId}, but sbatch ${s.mergeScript} failed: ${merge.error?.message ?? merge.stderr.trim()}`);
    return 1;
  }
  ctx.out(`units job ${jobId}\nmerge job ${merge.stdout.trim().split(';')[0]}`);
  return 0;
}

function ray(plan: SweepPlan, address: string | undefined, python: string | undefined, maxRetries: number, ctx: CliContext): Promise<number> {
  const root = packageRoot(plan.cli);
  const driver = path.join(root, 'python', 'moe_scope_ray.py');
  if (!fs.existsSync(driver)) throw new Error(`${driver}: the Ray driver is missing from this installation`);
  const venvPython = path.join(root, '.venv', 'bin', 'python');
  const py = python ?? process.env.MOE_SCOPE_PYTHON ?? (fs.existsSync(venvPython) ? venvPython : 'python3');
  const args = [driver, '--plan', path.join(plan.sweepDir, 'sweep.json'), '--max-retries', String(maxRetries), ...(address ? ['--address', address] : [])];
  ctx.err(`ray: ${py} ${args.join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(py, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    // Stopping the sweep (Ctrl-C, the editor closing its task) stops the driver, and Ray then ends its tasks.
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const onInt = forward('SIGINT');
    const onTerm = forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    child.on('error', (e) => {
      ctx.err(`ray: cannot start ${py}: ${e.message} (install Ray with pip install -r python/requirements-ray.txt, or pass --python)`);
      resolve(1);
    });
    child.on('close', (code) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      const rows = writeSweepSummary(plan);
      printRows(rows, ctx);
      resolve(code ?? 1);
    });
  });
}
