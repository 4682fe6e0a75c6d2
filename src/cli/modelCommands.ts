/** The command line's model commands: make a demo checkpoint, trace a text, analyse the weights. */
import { parseArgs } from 'node:util';
import { readRegularFile } from '../shared/safeFiles';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { ENGINE_OPTIONS, engineLog, openBackend } from './backend';
import { UsageError, type CliContext, type Command } from './command';
import { interventionFromOptions } from './evalRun';
import { Engine } from '../engines/onnxruntime/engine';
import { makeDemoModel, DEMO_FAMILIES, type DemoFamily } from '../engines/onnxruntime/demo/makeDemoModel';
import {
  ANSWER_SCORING_DEFINITIONS,
  EXECUTION_PROVIDER_SETTINGS,
  PRECISION_SETTINGS,
  type ExecutionProviderSetting,
  type ModelInfo,
  type PrecisionSetting,
  type Routing,
} from '../shared/protocol';
import { describeIntervention } from '../analysis/interventions';
import { topNextTokens } from '../analysis/nextTokens';
import { loadTokenizer } from '../engines/onnxruntime/formats/tokenizer';

export const MODEL_COMMANDS: Record<string, Command> = {
  'make-demo-model': {
    usage: `make-demo-model --out DIR [--family olmoe|mixtral|qwen2_moe|qwen3_moe] [--dtype f32|bf16] [--shards N]
      Generate a small checkpoint in the Hugging Face format (real layer/expert counts, tiny widths,
      random weights) with a byte-level BPE tokenizer trained on MMLU text.`,
    run: async (args, ctx) => makeDemo(args, ctx),
  },
  trace: {
    usage: `trace --model DIR (--text STR | --file PATH|- | --ids 1,2,3) [--json] [--provider auto|cuda|webgpu|cpu] [--precision auto|fp32|fp16|bf16|int8|int4] [--all-experts] [--engine onnxruntime|pytorch|auto] [--python PATH]
        [--mask-experts L:E,L:E,...] [--router-bias FILE.json] [--verbose]
      Run the model on one text and print its routing (router probabilities, top-k experts and weights,
      gate entropy) and next-token predictions; optionally with experts masked or router logits biased
      (the routing printed is the one used). --verbose adds the engine's info log and what the GPU
      drivers printed while being probed.`,
    run: (args, ctx) => trace(args, ctx),
  },
  'analyze-weights': {
    usage: `analyze-weights --model DIR [--layers 0,1,...] [--json] [--precision auto|fp32|int8|int4]
      Static expert-structure analysis from the weights (cosine similarity of experts' weight matrices,
      neuron-level similarity, router rows vs experts), streamed layer by layer and cached.`,
    run: (args, ctx) => analyzeWeights(args, ctx),
  },
};

function makeDemo(args: string[], ctx: CliContext): number {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: 'string' },
      family: { type: 'string', default: 'olmoe' },
      dtype: { type: 'string', default: 'f32' },
      shards: { type: 'string', default: '1' },
      corpus: { type: 'string' },
      packed: { type: 'boolean', default: false },
    },
  });
  if (!values.out) throw new UsageError('--out DIR is required');
  const family = values.family as DemoFamily;
  if (!DEMO_FAMILIES.includes(family)) throw new UsageError(`--family must be one of ${DEMO_FAMILIES.join(', ')}, not "${family}"`);
  const dtype = values.dtype === 'bf16' ? 'BF16' : values.dtype === 'f32' ? 'F32' : null;
  if (!dtype) throw new UsageError(`--dtype must be f32 or bf16, not "${values.dtype}"`);
  const t0 = Date.now();
  const res = makeDemoModel(path.resolve(values.out), { family, dtype, shards: Number(values.shards), corpusDir: values.corpus, packedExperts: values.packed });
  ctx.err(`wrote ${family} demo checkpoint (${res.tensors} tensors, ${(res.bytes / 1e6).toFixed(1)} MB) to ${res.dir} in ${Date.now() - t0} ms`);
  return 0;
}

/** On stderr: the provider in use, the adapter and every provider auto passed over, with the reason. */
export function reportProvider(info: ModelInfo, ctx: CliContext): void {
  const adapter = info.adapterName ? ` on ${info.adapterName}` : '';
  ctx.err(`provider: ${info.executionProvider}${adapter} (${info.dtype}${info.expertFormulation ? `, experts: ${info.expertFormulation}` : ''})`);
  if (info.precision) ctx.err(`precision: ${info.precision} (${info.precisionWhy ?? 'no reason recorded'})`);
  for (const d of info.providerDecisions ?? []) if (!d.used) ctx.err(`  passed over ${d.provider}: ${d.why}`);
}

export function precisionOption(v: string | undefined): PrecisionSetting {
  const p = v ?? 'auto';
  if (!(PRECISION_SETTINGS as readonly string[]).includes(p)) throw new UsageError(`--precision must be ${PRECISION_SETTINGS.join(', ')}, not "${p}"`);
  return p as PrecisionSetting;
}

export function providerOption(v: string | undefined): ExecutionProviderSetting {
  const p = v ?? 'auto';
  if (!(EXECUTION_PROVIDER_SETTINGS as readonly string[]).includes(p)) throw new UsageError(`--provider must be auto, cuda, webgpu or cpu, not "${p}"`);
  return p as ExecutionProviderSetting;
}

async function trace(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      text: { type: 'string' },
      file: { type: 'string' },
      ids: { type: 'string' },
      json: { type: 'boolean', default: false },
      provider: { type: 'string' },
      precision: { type: 'string' },
      cache: { type: 'string' },
      'all-experts': { type: 'boolean', default: false },
      ...ENGINE_OPTIONS,
      'mask-experts': { type: 'string' },
      'router-bias': { type: 'string' },
    },
  });
  if (!values.model) throw new UsageError('--model DIR is required');
  if ([values.text, values.file, values.ids].filter((v) => v !== undefined).length !== 1)
    throw new UsageError('give exactly one of --text STR, --file PATH (- for standard input) or --ids 1,2,3');
  const text = values.file !== undefined ? await readTextInput(values.file) : values.text;
  const intervention = interventionFromOptions(values.model, values['mask-experts'], values['router-bias']);
  const engine = await openBackend(values.engine, values.python, engineLog(ctx, values.verbose), values.model);
  try {
    const info = await engine.call('load', {
      modelPath: path.resolve(values.model),
      options: { executionProvider: providerOption(values.provider), precision: precisionOption(values.precision), cacheDir: values.cache },
    });
    if (info.providerNote) ctx.err(info.providerNote);
    reportProvider(info, ctx);
    const input = text !== undefined ? { text } : { ids: parseIds(values.ids!) };
    const r = await engine.call('trace', { input, options: { includeProbs: true, includeLastLogits: true, allExperts: values['all-experts'], intervention } });
    if (values.json) {
      const out: Record<string, unknown> = {
        model: r.model,
        ids: r.tokens.map((t) => t.id),
        tokens: r.tokens.map((t) => t.text),
        offsets: r.tokens.map((t) => [t.start, t.end]),
        routerProbs: nest3(r.routing.probs!, r.routing.numLayers, r.routing.numTokens, r.routing.numExperts),
        topExperts: nest3(r.routing.topExperts, r.routing.numLayers, r.routing.numTokens, r.routing.topK),
        topWeights: nest3(r.routing.topWeights, r.routing.numLayers, r.routing.numTokens, r.routing.topK),
        entropy: nest2(r.routing.entropy, r.routing.numLayers, r.routing.numTokens),
        answerLogProbs: { A: r.answerLogProbs[0], B: r.answerLogProbs[1], C: r.answerLogProbs[2], D: r.answerLogProbs[3] },
        answerScoring: r.model.answerScoring.method,
        lastLogits: Array.from(r.lastLogits!),
        ms: r.ms,
      };
      if (intervention) out.intervention = intervention;
      if (r.expertOutputs) {
        const x = r.expertOutputs;
        out.expertOutputNorms = nest3(x.norms, x.numLayers, x.numTokens, x.numExperts);
        out.expertOutputSimilarity = nest2(x.meanAngularSimilarity, x.numLayers, x.numTokens);
      }
      ctx.out(JSON.stringify(out));
    } else {
      if (intervention) ctx.out(`router intervention: ${describeIntervention(intervention, info.numLayers)}`);
      ctx.out(
        describeTrace(
          r.tokens.map((t) => t.text),
          r.routing,
          r.answerProbs,
          info.numExperts,
        ),
      );
      if (r.lastLogits) ctx.out(await describeNextTokens(values.model, r.lastLogits));
      ctx.out(`answer scoring: ${ANSWER_SCORING_DEFINITIONS[info.answerScoring.method]}`);
      if (info.demo) ctx.out(`\nNote: ${info.demo.note}`);
    }
    return 0;
  } finally {
    await engine.dispose();
  }
}

async function analyzeWeights(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: 'string' },
      layers: { type: 'string' },
      json: { type: 'boolean', default: false },
      cache: { type: 'string' },
      precision: { type: 'string' },
    },
  });
  if (!values.model) throw new UsageError('--model DIR is required');
  const layers = values.layers === undefined ? undefined : parseIds(values.layers);
  const engine = new Engine((level, m) => ctx.err(m));
  try {
    // Loading builds the runtime too; the analysis itself only reads the safetensors files.
    await engine.load(path.resolve(values.model), { executionProvider: 'cpu', precision: precisionOption(values.precision), cacheDir: values.cache });
    const r = await engine.call('analyzeWeights', { layers });
    if (values.json) ctx.out(JSON.stringify(r));
    else {
      ctx.out(`${r.layers.length} layers, ${r.numExperts} experts, ${(r.ms / 1000).toFixed(1)} s`);
      ctx.out('layer  gate    up      down    all     router  R^2(router~experts)');
      for (const l of r.layers) {
        const m = l.meanOffDiagonal;
        ctx.out(
          `${String(l.layer).padStart(5)}  ${[m.gate, m.up, m.down, m.all, m.router].map((x) => x.toFixed(4).padStart(6)).join('  ')}  ${l.routerVsExpertR2.toFixed(4)}`,
        );
      }
      ctx.out('(mean off-diagonal cosine similarity between experts per layer)');
    }
    return 0;
  } finally {
    await engine.dispose();
  }
}

/** The five most probable next tokens after the text, decoded with the checkpoint's own tokenizer. */
async function describeNextTokens(modelDir: string, lastLogits: ArrayLike<number>): Promise<string> {
  const best = topNextTokens(lastLogits, 5);
  const tokenizer = await loadTokenizer(path.resolve(modelDir));
  return `next-token predictions: ${best.map((t) => `${JSON.stringify(tokenizer.decode([t.id]))} ${(100 * t.prob).toFixed(1)}%`).join('  ')}`;
}

function describeTrace(tokens: string[], routing: Routing, answerProbs: number[], numExperts: number): string {
  const lines = [`${tokens.length} tokens, ${routing.numLayers} layers, top-${routing.topK} of ${numExperts} experts`];
  lines.push(`answer probabilities: ${['A', 'B', 'C', 'D'].map((l, i) => `${l} ${(answerProbs[i] * 100).toFixed(1)}%`).join('  ')}`);
  const last = tokens.length - 1;
  lines.push(`last token ${JSON.stringify(tokens[last])}:`);
  for (let l = 0; l < routing.numLayers; l++) {
    const ex: string[] = [];
    for (let s = 0; s < routing.topK; s++) {
      const i = (l * routing.numTokens + last) * routing.topK + s;
      ex.push(`${routing.topExperts[i]}:${routing.topWeights[i].toFixed(3)}`);
    }
    const h = routing.entropy[l * routing.numTokens + last] / Math.log(numExperts);
    lines.push(`  layer ${String(l).padStart(2)}  entropy ${h.toFixed(3)}  experts ${ex.join(' ')}`);
  }
  return lines.join('\n');
}

/** More text than any context holds; reading stops here rather than at the memory limit. */
export const MAX_TEXT_BYTES = 16 << 20;

/** The text of --file: a regular file, or standard input for "-", at most MAX_TEXT_BYTES. */
async function readTextInput(file: string): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const take = (c: Buffer) => {
    bytes += c.length;
    if (bytes > MAX_TEXT_BYTES) throw new UsageError(`--file ${file}: more than ${MAX_TEXT_BYTES} bytes of text; no model context holds that much`);
    chunks.push(c);
  };
  if (file === '-') {
    for await (const c of process.stdin) take(c as Buffer);
  } else {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (e) {
      throw new UsageError(`--file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    if (!st.isFile()) throw new UsageError(`--file ${file}: not a regular file`);
    if (st.size > MAX_TEXT_BYTES) throw new UsageError(`--file ${file}: ${st.size} bytes; no model context holds that much (limit ${MAX_TEXT_BYTES})`);
    take(readRegularFile(file, { maxBytes: MAX_TEXT_BYTES }));
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) throw new UsageError(`--file ${file}: no text`);
  return text;
}

export function parseIds(s: string): number[] {
  const ids = s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  // Decimal digits only: Number() would also take "1e3", "0x10" and " 7 ".
  if (ids.length === 0 || ids.some((x) => !/^\d{1,9}$/.test(x))) throw new UsageError(`--ids must be comma-separated non-negative integers, got "${s}"`);
  return ids.map(Number);
}

export function nest3(a: ArrayLike<number>, d0: number, d1: number, d2: number): number[][][] {
  const out: number[][][] = [];
  for (let i = 0; i < d0; i++) {
    const m: number[][] = [];
    for (let j = 0; j < d1; j++) m.push(Array.from({ length: d2 }, (_, k) => a[(i * d1 + j) * d2 + k]));
    out.push(m);
  }
  return out;
}

export function nest2(a: ArrayLike<number>, d0: number, d1: number): number[][] {
  return Array.from({ length: d0 }, (_, i) => Array.from({ length: d1 }, (_, j) => a[i * d1 + j]));
}
