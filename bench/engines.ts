/**
 * The two engines side by side on this machine, in one run: a 600-token trace and 5-shot evaluation
 * throughput on the OLMoE-shaped demo model, ONNX Runtime (in-process, as the CLI runs it) vs the PyTorch
 * worker (CPU here), as ratios. Needs a Python with torch and transformers (MOE_SCOPE_PYTHON or .venv).
 * Writes bench/results/engines.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeDemoModel } from '../src/engines/onnxruntime/demo/makeDemoModel';
import { openBackend } from '../src/cli/backend';
import { runEvaluation } from '../src/eval/runner';
import { traceBench } from './gpu/traceBench';
import { BENCH_ROOT, demoEvalOptions, machineInfo, runBenchmark, writeResult } from './common';

const ROOT = BENCH_ROOT;
const quick = process.argv.includes('--quick');
const python = process.env.MOE_SCOPE_PYTHON ?? path.join(ROOT, '.venv', 'bin', 'python');
process.env.MOE_SCOPE_WORKER_DIR ??= path.join(ROOT, 'python');

async function evalThroughput(engine: string, model: string, work: string) {
  const backend = await openBackend(engine, python, () => {});
  try {
    const t0 = Date.now();
    await backend.call('load', { modelPath: model, options: { executionProvider: 'cpu', cacheDir: path.join(work, 'cache') } });
    const loadSeconds = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    const out = await runEvaluation(backend, demoEvalOptions(model, work, `run-${engine}`, quick ? 8 : 24));
    const seconds = (Date.now() - t1) / 1000;
    const s = out.summary;
    return {
      engine,
      loadSeconds,
      questions: s.questions,
      seconds,
      questionsPerSecond: s.questions / seconds,
      computedTokens: s.tokens.computed,
      tokensPerSecond: s.tokens.computed / seconds,
      accuracy: s.accuracy.micro,
    };
  } finally {
    await backend.dispose();
  }
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-bench-engines-'));
  try {
    const model = path.join(work, 'model');
    makeDemoModel(model, { family: 'olmoe', corpusDir: path.join(ROOT, 'media', 'demo-data', 'mmlu') });
    const text = fs.readFileSync(path.join(ROOT, 'media', 'demo-data', 'mmlu', 'data', 'test', 'high_school_biology_test.csv'), 'utf8');
    const traces = [];
    const evals = [];
    for (const engine of ['onnxruntime', 'pytorch']) {
      console.error(`${engine}: 600-token trace`);
      traces.push(await traceBench({ model, text, engine, python, tokens: 600, reps: quick ? 3 : 7, provider: 'cpu' }));
      console.error(`${engine}: 5-shot evaluation`);
      evals.push(await evalThroughput(engine, model, work));
    }
    const [to, tp] = traces;
    const [eo, ep] = evals;
    const result = {
      date: new Date().toISOString(),
      machine: machineInfo(),
      model: 'OLMoE-shaped demo model (16 layers x 64 experts, top-8, hidden 64), float32, CPU',
      trace: traces,
      eval: evals,
      ratios: {
        traceOnnxOverPytorch: tp.medianTraceMs / to.medianTraceMs,
        evalOnnxOverPytorch: eo.questionsPerSecond / ep.questionsPerSecond,
      },
    };
    writeResult('engines', result);
    console.error(
      `trace: ONNX Runtime ${to.medianTraceMs} ms, PyTorch ${tp.medianTraceMs} ms; eval: ${eo.questionsPerSecond.toFixed(2)} vs ${ep.questionsPerSecond.toFixed(2)} q/s`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

runBenchmark(main);
