/**
 * `moe-scope precision-check`: what a weight precision costs in routing, measured. N MMLU questions
 * (0-shot prompts, spread over the data's subjects) are traced at fp32 and at the precision, one model
 * loaded at a time; the report gives per-layer top-k set agreement, the largest router-probability
 * difference and how often the most likely answer letter is the same. The result is stored where the
 * extension shows it beside the precision (src/shared/precisionCheck.ts).
 */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENGINE_OPTIONS, engineLog, openBackend } from './backend';
import { UsageError, type CliContext, type Command } from './command';
import { precisionOption, providerOption } from './modelCommands';
import { loadDataset } from '../mmlu/load';
import { buildPrompt } from '../mmlu/prompt';
import { defaultCorpusDir } from '../engines/onnxruntime/demo/makeDemoModel';
import { compareRouting, mergeAgreements, type RoutingAgreement } from '../analysis/precisionAgreement';
import { precisionCheckFile } from '../shared/precisionCheck';
import type { PrecisionCheckSummary, TraceResult, WeightPrecision } from '../shared/protocol';

export const PRECISION_CHECK_COMMAND: Record<string, Command> = {
  'precision-check': {
    usage: `precision-check --model DIR [--precision int8|int4|bf16|fp16 (default int8)] [--prompts N (default 8)] [--data PATH (default: the bundled MMLU sample)]
        [--provider auto|cuda|webgpu|cpu] [--engine onnxruntime|pytorch|auto] [--json]
      Trace N MMLU prompts at fp32 and at the precision and report how much routing changed: top-k set
      agreement per layer, the largest router-probability difference, answer agreement. Stored for the
      extension, which shows it beside the precision.`,
    run: (args, ctx) => precisionCheck(args, ctx),
  },
};

async function precisionCheck(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      precision: { type: 'string', default: 'int8' },
      prompts: { type: 'string', default: '8' },
      data: { type: 'string' },
      provider: { type: 'string' },
      cache: { type: 'string' },
      json: { type: 'boolean', default: false },
      ...ENGINE_OPTIONS,
    },
  });
  if (!values.model) throw new UsageError('--model DIR is required');
  const precision = precisionOption(values.precision);
  if (precision === 'auto' || precision === 'fp32')
    throw new UsageError(`--precision must name a precision other than fp32 (the reference), not "${precision}"`);
  const n = Number(values.prompts);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new UsageError(`--prompts must be an integer from 1 to 10000, not "${values.prompts}"`);
  const modelPath = path.resolve(values.model);
  const dataPath = path.resolve(values.data ?? defaultCorpusDir());
  const data = await loadDataset(dataPath, { split: 'test' });
  if (data.questions.length === 0) throw new UsageError(`${dataPath}: no test questions`);
  const step = Math.max(1, Math.floor(data.questions.length / n));
  const prompts = data.questions
    .filter((_, i) => i % step === 0)
    .slice(0, n)
    .map((q) => buildPrompt(q, [], 0).text);

  const engine = await openBackend(values.engine, values.python, engineLog(ctx, values.verbose), modelPath);
  const runAt = async (p: WeightPrecision): Promise<TraceResult[]> => {
    const info = await engine.call('load', {
      modelPath,
      options: { executionProvider: providerOption(values.provider), precision: p, cacheDir: values.cache },
    });
    ctx.err(`loaded at ${info.precision ?? info.dtype} (${info.precisionWhy ?? ''}); tracing ${prompts.length} prompts`);
    const out: TraceResult[] = [];
    for (const text of prompts) out.push(await engine.call('trace', { input: { text }, options: { includeProbs: true, includeLastLogits: false } }));
    return out;
  };
  let reference: TraceResult[];
  let candidate: TraceResult[];
  try {
    reference = await runAt('fp32');
    candidate = await runAt(precision);
  } finally {
    await engine.dispose();
  }
  const parts: RoutingAgreement[] = reference.map((r, i) => compareRouting(r.routing, candidate[i].routing));
  const merged = mergeAgreements(parts);
  const argmax = (v: ArrayLike<number>) => [0, 1, 2, 3].reduce((b, i) => (v[i] > v[b] ? i : b), 0);
  const answers = reference.filter((r, i) => argmax(r.answerLogProbs) === argmax(candidate[i].answerLogProbs)).length;
  const summary: PrecisionCheckSummary = {
    format: 'moe-scope.precision-check',
    model: modelPath,
    precision,
    prompts: prompts.length,
    setAgreement: merged.setAgreement,
    expertOverlap: merged.expertOverlap,
    perLayer: merged.perLayer,
    maxProbDiff: merged.maxProbDiff,
    answerAgreement: answers / prompts.length,
    createdAt: new Date().toISOString(),
  };
  const file = precisionCheckFile(values.cache, modelPath, precision);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(summary, null, 2) + '\n');
  if (values.json) ctx.out(JSON.stringify(summary));
  else {
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
    ctx.out(`${precision} vs fp32 on ${prompts.length} MMLU prompts (${merged.sets} layer x token top-k sets):`);
    ctx.out(`  top-k sets identical: ${pct(merged.setAgreement)}; experts shared: ${pct(merged.expertOverlap)}`);
    ctx.out(`  max router-probability difference: ${merged.maxProbDiff.toExponential(2)}`);
    ctx.out(`  most likely answer the same: ${answers} of ${prompts.length} (${pct(summary.answerAgreement)})`);
    ctx.out(`  per layer: ${merged.perLayer.map((x, l) => `${l}:${pct(x)}`).join(' ')}`);
    ctx.out(`stored in ${file}`);
  }
  return 0;
}
