/**
 * The whole run minus the model: a full 5-shot MMLU pass (test split, 14,042 questions) through the real
 * runner with the null engine (test/support/nullEngine.ts: real config and tokenizer of the demo model,
 * score requests answered at once with right-shaped arrays), in-process and through the engine process
 * protocol, each cold (no plan cache) and with the plan cached. Reports each stage's seconds and share.
 * Writes bench/results/null-model.json.
 *   node dist/bench/nullModel.js [--quick]     (--quick: 20 questions per subject)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeDemoModel } from '../src/engines/onnxruntime/demo/makeDemoModel';
import { EngineClient, nodeChannel } from '../src/engines/client/engineClient';
import { runEvaluation, type EvalOptions, type EvalStage } from '../src/eval/runner';
import type { InferenceBackend } from '../src/shared/protocol';
import { NullEngine } from '../test/support/nullEngine';
import { mmluDir } from '../test/support/mmlu';
import { BENCH_ROOT, machineInfo, runBenchmark, writeResult } from './common';

const quick = process.argv.includes('--quick');
const TARGETS = { coldSeconds: 5, cachedSeconds: 2 };

async function timedRun(backend: InferenceBackend, opts: EvalOptions) {
  const stages: Partial<Record<EvalStage, number>> = {};
  const logs: string[] = [];
  const t0 = performance.now();
  const out = await runEvaluation(backend, opts, { onStage: (s, sec) => (stages[s] = (stages[s] ?? 0) + sec), onLog: (m) => logs.push(m) });
  const seconds = (performance.now() - t0) / 1000;
  const shares = Object.fromEntries(Object.entries(stages).map(([s, v]) => [s, +(v / seconds).toFixed(3)]));
  return {
    seconds: +seconds.toFixed(3),
    questions: out.summary.questions,
    stagesSeconds: Object.fromEntries(Object.entries(stages).map(([s, v]) => [s, +v.toFixed(3)])),
    stageShares: shares,
    planLog: logs.find((l) => l.startsWith('planned in') || l.startsWith('plan read from')),
  };
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-bench-null-'));
  try {
    const model = path.join(work, 'model');
    makeDemoModel(model, { family: 'olmoe', corpusDir: path.join(BENCH_ROOT, 'media', 'demo-data', 'mmlu') });
    const options = (name: string, cacheDir: string): EvalOptions => ({
      modelPath: model,
      load: { executionProvider: 'cpu', cacheDir },
      hashCacheFile: path.join(work, 'hashes.json'),
      dataPath: mmluDir(),
      split: 'test',
      shots: 5,
      limitPerSubject: quick ? 20 : 0,
      tokenScope: 'answer',
      batchSize: 8,
      runDir: path.join(work, name),
    });
    const rows: Record<string, unknown>[] = [];
    const modes: { transport: string; backend: () => { backend: InferenceBackend; dispose: () => Promise<void> } }[] = [
      { transport: 'in-process', backend: () => ({ backend: new NullEngine(), dispose: async () => {} }) },
      {
        transport: 'engine process (node IPC, advanced serialisation)',
        backend: () => {
          const client = new EngineClient({ channel: nodeChannel(path.join(BENCH_ROOT, 'dist', 'bench', 'nullEngineProcess.js')) });
          return { backend: client, dispose: () => client.dispose() };
        },
      },
    ];
    for (const [m, mode] of modes.entries()) {
      const cacheDir = path.join(work, `cache-${m}`);
      for (const plan of ['cold', 'cached'] as const) {
        const { backend, dispose } = mode.backend();
        try {
          const r = await timedRun(backend, options(`run-${m}-${plan}`, cacheDir));
          const target = plan === 'cold' ? TARGETS.coldSeconds : TARGETS.cachedSeconds;
          rows.push({ transport: mode.transport, plan, ...r, targetSeconds: target, meetsTarget: r.seconds <= target });
          console.error(`  ${mode.transport}, ${plan}: ${r.seconds} s for ${r.questions} questions (target ${target} s) ${JSON.stringify(r.stagesSeconds)}`);
        } finally {
          await dispose();
        }
      }
    }
    writeResult(quick ? 'null-model-quick' : 'null-model', {
      date: new Date().toISOString(),
      machine: machineInfo({ load1: os.loadavg()[0] }),
      note: 'wall-clock seconds of runEvaluation (model load excluded from nothing: the null engine loads config and tokenizer); the machine was shared with other work while measured',
      targets: TARGETS,
      runs: rows,
    });
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

runBenchmark(main);
