/**
 * Evaluation tasks in the editor (issue 12, class 2): each task gets its own inference process, so two
 * tasks on different models never score each other's questions, and one task ending never stops another.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EvalClientPool } from '../../src/engines/client/evalClients';
import { runEvaluation, type EvalOptions } from '../../src/eval/runner';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { makeModel, tempDir, REPO_ROOT, DEMO_CORPUS } from '../support/models';

const entry = path.join(REPO_ROOT, 'dist', 'inference-process.js');
const modelA = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
const modelB = makeModel({ family: 'mixtral', overrides: { layers: 2 } });
const cache = tempDir('cache');

const options = (modelPath: string, runDir: string): EvalOptions => ({
  modelPath,
  load: { executionProvider: 'cpu', cacheDir: cache },
  dataPath: DEMO_CORPUS,
  split: 'test',
  shots: 1,
  limitPerSubject: 3,
  tokenScope: 'answer',
  batchSize: 1,
  runDir,
  hashCacheFile: path.join(cache, 'hashes.json'),
});

function records(runDir: string): { id: string; logProbs: number[] }[] {
  return fs
    .readFileSync(path.join(runDir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => JSON.parse(l).questions);
}

test('two tasks on two models at once: separate processes, each run scored only on its own model; one ending leaves the other running', async () => {
  assert.ok(fs.existsSync(entry), `${entry} is missing: run node esbuild.mjs first`);
  const pool = new EvalClientPool(() => ({ entry }));
  const a = pool.acquire('a');
  const b = pool.acquire('b');
  const dirA = tempDir('task-a');
  const dirB = tempDir('task-b');
  try {
    const runA = runEvaluation(a.client, options(modelA, dirA));
    // B starts once A is under way, loads another model, and A's task ends while B still runs.
    const runB = (async () => {
      while (!fs.existsSync(path.join(dirA, 'records.jsonl'))) await new Promise((r) => setTimeout(r, 10));
      return runEvaluation(b.client, options(modelB, dirB));
    })();
    const outA = await runA;
    assert.notEqual(a.client.pid, b.client.pid, 'each task has its own process');
    await a.release();
    const outB = await runB;
    assert.equal(outA.summary.questions, 18);
    assert.equal(outB.summary.questions, 18);
    assert.equal(outA.summary.model.family, 'olmoe');
    assert.equal(outB.summary.model.family, 'mixtral');
  } finally {
    await b.release();
    await pool.dispose();
  }
  assert.equal(pool.size, 0);
  // What an in-process engine on each model alone computes: no record was scored on the other model.
  for (const [model, dir] of [
    [modelA, dirA],
    [modelB, dirB],
  ] as const) {
    const alone = tempDir('alone');
    const engine = new Engine();
    try {
      await runEvaluation(engine, options(model, alone));
    } finally {
      await engine.dispose();
    }
    const want = new Map(records(alone).map((q) => [q.id, q.logProbs]));
    for (const q of records(dir)) {
      const w = want.get(q.id)!;
      q.logProbs.forEach((v, i) => assert.ok(Math.abs(v - w[i]) < 1e-4, `${dir} ${q.id}: ${v} vs ${w[i]}`));
    }
  }
});
