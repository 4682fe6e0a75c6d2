/** `moe-scope experiment` (derive an intervention from a run and evaluate under it) and `moe-scope compare`. */
import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { UsageError, type Command } from './command';
import { runEvalCommand } from './evalRun';
import { sameRun, SAME_RUN_MESSAGE } from '../eval/runPairs';
import { ENGINE_OPTIONS, engineLog, openBackend } from './backend';
import { checkBaselineWeights, prepareExperiment } from '../eval/experiment';
import { jsonDifferences } from '../eval/fingerprint';
import { readManifest, readQuestionResults, readSummary, RunFolderError } from '../eval/runFolder';
import { precisionOption } from './modelCommands';
import { describeIntervention, maskedPerLayer, biasedPerLayer, parseMaskSpec, type ExperimentSpec } from '../analysis/interventions';
import { compareRuns, mcnemarInWords, formatP } from '../analysis/compare';
import { describeCalibration, describeFlipped, flippedCsv } from '../analysis/evidence';
import * as fs from 'node:fs';
import { PRUNE_BY_OPTIONS, pruneBySpecFromOptions, weightScoresFor, type PruneByValues } from './pruneBy';
import { derivePruningPlan, describePlan } from '../analysis/pruningPlans';
import { demoModelLabel, demoResultsCaveat } from '../shared/demoLabel';
import { EXECUTION_PROVIDER_SETTINGS, type AccuracyDelta, type ExecutionProviderSetting, type RunComparison } from '../shared/protocol';

/** The experiment options of the command line as a spec (exactly one rule). */
export function experimentSpecFromOptions(
  v: { prune?: string; 'prune-below-count'?: string; 'steer-top-accuracy'?: string; bias?: string } & PruneByValues,
): ExperimentSpec {
  const given = (['prune', 'prune-below-count', 'steer-top-accuracy', 'prune-by'] as const).filter((k) => v[k] !== undefined);
  if (given.length !== 1)
    throw new UsageError(
      `give exactly one of --prune never-activated, --prune-below-count N, --prune L:E,..., --prune-by CRITERION --ratio R or --steer-top-accuracy P --bias B${given.length ? ` (got --${given.join(', --')})` : ''}`,
    );
  if (given[0] !== 'prune-by' && (v.ratio !== undefined || v.threshold !== undefined || v['per-layer'] || v.global || v.keep !== undefined))
    throw new UsageError('--ratio, --threshold, --per-layer, --global and --keep go with --prune-by');
  if (v.bias !== undefined && given[0] !== 'steer-top-accuracy') throw new UsageError('--bias goes with --steer-top-accuracy');
  switch (given[0]) {
    case 'prune-by':
      return { kind: 'prune-by', plan: pruneBySpecFromOptions(v) };
    case 'prune':
      return v.prune === 'never-activated' ? { kind: 'prune-never-activated' } : { kind: 'prune', experts: parseMaskSpec(v.prune!, '--prune') };
    case 'prune-below-count': {
      const n = Number(v['prune-below-count']);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--prune-below-count must be a positive integer, got "${v['prune-below-count']}"`);
      return { kind: 'prune-below-count', count: n };
    }
    case 'steer-top-accuracy': {
      const p = Number(v['steer-top-accuracy']);
      if (!(p > 0 && p <= 1))
        throw new UsageError(
          `--steer-top-accuracy must be a fraction in (0, 1], e.g. 0.1 for the top 10% of experts per layer; got "${v['steer-top-accuracy']}"`,
        );
      if (v.bias === undefined) throw new UsageError("--steer-top-accuracy needs --bias B (added to those experts' router logits)");
      const b = Number(v.bias);
      if (!Number.isFinite(b) || b === 0) throw new UsageError(`--bias must be a non-zero number, got "${v.bias}"`);
      return { kind: 'steer-top-accuracy', fraction: p, bias: b };
    }
  }
}

export const EXPERIMENT_COMMANDS: Record<string, Command> = {
  experiment: {
    usage:
      'experiment --baseline RUN (--prune never-activated | --prune-below-count N | --prune L:E,... |\n' +
      '     --prune-by man|msan|gate|count|weights (--ratio R [--per-layer|--global] | --threshold T) [--keep K] |\n' +
      '     --steer-top-accuracy P --bias B) --out RUN2 [--batch-size 8] [--provider auto|cuda|webgpu|cpu] [--dry-run]\n' +
      "     [--precision auto|fp32|fp16|bf16|int8|int4 (default: the baseline's; another one is refused)] [--engine onnxruntime|pytorch|auto] [--python PATH]\n" +
      '      Derive a router intervention from a finished run (mask never-activated experts, experts with fewer\n' +
      '      than N activations, or chosen experts; or add B to the logits of the top fraction P of experts by\n' +
      '      accuracy per layer; or a pruning plan: the lowest fraction R of experts by a score, per layer (default)\n' +
      '      or over all layers, or those below T, every layer keeping at least K (default top-k)) and evaluate\n' +
      '      the same model, data, shots and scope under it; resumable. --dry-run prints the plan per layer.',
    async run(args, ctx) {
      const { values } = parseArgs({
        args,
        options: {
          baseline: { type: 'string' },
          out: { type: 'string' },
          prune: { type: 'string' },
          'prune-below-count': { type: 'string' },
          'steer-top-accuracy': { type: 'string' },
          bias: { type: 'string' },
          ...PRUNE_BY_OPTIONS,
          'batch-size': { type: 'string', default: '8' },
          provider: { type: 'string', default: 'auto' },
          precision: { type: 'string' },
          cache: { type: 'string' },
          quiet: { type: 'boolean', default: false },
          'dry-run': { type: 'boolean', default: false },
          ...ENGINE_OPTIONS,
        },
      });
      if (!values.baseline) throw new UsageError('--baseline RUN is required');
      if (!values.out) throw new UsageError('--out RUN2 is required');
      let spec = experimentSpecFromOptions(values);
      const provider = values.provider as ExecutionProviderSetting;
      if (!EXECUTION_PROVIDER_SETTINGS.includes(provider)) throw new UsageError('--provider must be auto, cuda, webgpu or cpu');
      const batchSize = Number(values['batch-size']);
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError('--batch-size must be a positive integer');
      if (spec.kind === 'prune-by' && spec.plan.criterion === 'weights') {
        const manifest = readManifest(path.resolve(values.baseline));
        if (!manifest)
          throw new RunFolderError(path.join(path.resolve(values.baseline), 'manifest.json'), 'not found; --baseline must be an evaluation run folder');
        spec = { ...spec, weightScores: await weightScoresFor(manifest.model.path, values.cache) };
      }
      const exp = prepareExperiment(values.baseline, spec, values.out, {
        load: {
          executionProvider: provider,
          precision: values.precision === undefined ? undefined : precisionOption(values.precision),
          cacheDir: values.cache,
        },
        batchSize,
      });
      const L = exp.baseline.summary.model.numLayers;
      ctx.err(`experiment: ${describeIntervention(exp.intervention, L)}`);
      const masked = maskedPerLayer(exp.intervention, L);
      const biased = biasedPerLayer(exp.intervention, L);
      ctx.err(`per layer: ${masked.map((m, l) => `${l}:${m ? `-${m}` : ''}${biased[l] ? `+${biased[l]}` : ''}${!m && !biased[l] ? '0' : ''}`).join(' ')}`);
      const plan = spec.kind === 'prune-by' ? derivePruningPlan(exp.baseline.summary, spec.plan, spec.weightScores) : undefined;
      if (plan) ctx.err(describePlan(plan));
      if (values['dry-run']) {
        ctx.out(JSON.stringify({ intervention: exp.intervention, evaluation: exp.options, ...(plan ? { plan } : {}) }, null, 2));
        return 0;
      }
      await checkBaselineWeights(exp.baseline);
      const engine = await openBackend(values.engine, values.python, engineLog(ctx, values.verbose), exp.options.modelPath);
      return runEvalCommand(engine, exp.options, ctx, values.quiet!);
    },
  },
  compare: {
    usage:
      'compare RUN_A RUN_B [--json] [--different-weights] [--flipped-csv FILE]\n' +
      "      Accuracy (micro, macro, per subject and category) of two runs with deltas, McNemar's exact test on\n" +
      "      per-question correctness, the change in each (layer, expert)'s share of activations, the questions\n" +
      '      that flipped (right -> wrong and back; --flipped-csv writes them), and how alike the two runs would\n' +
      "      prune (per layer: overlap of each criterion's lowest 25% and Jensen-Shannon divergence of activations).",
    async run(args, ctx) {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        options: { json: { type: 'boolean', default: false }, 'different-weights': { type: 'boolean', default: false }, 'flipped-csv': { type: 'string' } },
      });
      if (positionals.length !== 2) throw new UsageError(`give two run folders, got ${positionals.length}`);
      if (sameRun(positionals[0]!, positionals[1]!)) throw new UsageError(SAME_RUN_MESSAGE);
      const runs = positionals.map((p) => {
        const dir = path.resolve(p);
        const summary = readSummary(dir);
        if (!summary) throw new RunFolderError(path.join(dir, 'summary.json'), `not found; is ${p} an evaluation run folder?`);
        const manifest = readManifest(dir);
        return { label: path.basename(dir), runDir: dir, summary, questions: readQuestionResults(dir), engine: manifest?.model.engine, manifest };
      });
      // Two runs on different weights differ for that reason alone: not an intervention's effect.
      const [ma, mb] = runs.map((r) => r.manifest);
      const weightDiffs = ma && mb ? jsonDifferences(ma.model.files, mb.model.files) : [];
      if (weightDiffs.length && !values['different-weights'])
        throw new RunFolderError(
          path.join(runs[1].runDir, 'manifest.json'),
          `ran on other model weights than ${runs[0].runDir} (different ${weightDiffs.slice(0, 4).join(', ')}); pass --different-weights to compare them anyway`,
        );
      const c = compareRuns(runs[0], runs[1]);
      if (weightDiffs.length) c.warnings.unshift(`different model weights (${weightDiffs.slice(0, 2).join(', ')})`);
      if (values['flipped-csv']) fs.writeFileSync(values['flipped-csv'], flippedCsv(c.flipped ?? []));
      ctx.out(values.json ? JSON.stringify(c) : describeComparison(c));
      return 0;
    },
  },
};

const pct = (x: number | null) => (x === null ? '     -' : `${(100 * x).toFixed(1).padStart(5)}%`);
const signedPct = (x: number | null) => (x === null ? '     -' : `${x >= 0 ? '+' : '-'}${(100 * Math.abs(x)).toFixed(1)}`.padStart(6));
/** Width of the name column of the accuracy table; the header is padded the same way so A, B and B-A sit over their numbers. */
const NAME_WIDTH = 40;

export function describeComparison(c: RunComparison): string {
  const A = c.a.label;
  const B = c.b.label;
  const lines: string[] = [];
  const describeRun = (r: RunComparison['a']) =>
    `${r.label}: ${r.questions} questions${r.complete ? '' : ' (incomplete)'}; ${r.intervention ? describeIntervention(r.intervention, c.activation.numLayers) : 'no intervention'}`;
  lines.push(`A = ${describeRun(c.a)}`, `B = ${describeRun(c.b)}`);
  for (const w of c.warnings) lines.push(`warning: ${w}`);
  if (c.a.demo || c.b.demo) {
    const trained = (!c.a.demo || !!c.a.demoTrained) && (!c.b.demo || !!c.b.demoTrained);
    lines.push(`note: ${demoModelLabel(trained)}; ${demoResultsCaveat(trained, 'comparison')}`);
  }
  const row = (name: string, d: AccuracyDelta) =>
    `  ${name.padEnd(NAME_WIDTH)} ${pct(d.a)}  ${pct(d.b)}  ${signedPct(d.delta)}  (${d.questionsA}/${d.questionsB} q)`;
  lines.push('', `  ${'accuracy'.padEnd(NAME_WIDTH)} ${'A'.padStart(6)}  ${'B'.padStart(6)}  ${'B-A'.padStart(6)}  (points)`);
  lines.push(row('micro', c.accuracy.micro), row('macro', c.accuracy.macro));
  lines.push('', 'per category');
  for (const x of c.accuracy.perCategory) lines.push(row(x.category, x));
  lines.push('', 'per subject');
  for (const x of c.accuracy.perSubject) lines.push(row(x.subject, x));
  const m = c.mcnemar;
  lines.push(
    '',
    `McNemar (paired ${m.paired}): both right ${m.bothCorrect}, both wrong ${m.bothWrong}, b01 (A wrong, B right) ${m.b01}, b10 (A right, B wrong) ${m.b10}, exact p = ${formatP(m.pValue)}`,
  );
  lines.push(mcnemarInWords(m, A, B));
  const changes: { l: number; e: number; d: number }[] = [];
  c.activation.deltaShare.forEach((row, l) => row.forEach((d, e) => d !== 0 && changes.push({ l, e, d })));
  changes.sort((x, y) => Math.abs(y.d) - Math.abs(x.d));
  lines.push(
    '',
    `activation share change (B - A, share of each layer's assignments, ${c.activation.tokenScope} scope): ${changes.length} (layer, expert) pairs changed; largest:`,
  );
  for (const x of changes.slice(0, 15))
    lines.push(
      `  layer ${String(x.l).padStart(2)} expert ${String(x.e).padStart(3)}  ${pct(c.activation.shareA[x.l][x.e])} -> ${pct(c.activation.shareB[x.l][x.e])}  (${x.d >= 0 ? '+' : ''}${(100 * x.d).toFixed(2)} points)`,
    );
  if (c.flipped) lines.push('', ...describeFlipped(c.flipped));
  if (c.calibration) lines.push('', ...describeCalibration(c.calibration));
  // Labels and subject names come from files anyone can write: no terminal escape sequences reach the terminal.
  return lines.map(printable).join('\n');
}

// Every C0 control but tab and newline, DEL and every C1 control (ESC and CSI start terminal sequences).
const printable = (line: string) => Array.from(line, (ch) => (isControl(ch.codePointAt(0)!) ? '?' : ch)).join('');
const isControl = (c: number) => (c < 0x20 && c !== 0x09 && c !== 0x0a) || (c >= 0x7f && c <= 0x9f);
