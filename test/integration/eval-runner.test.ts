/** The evaluation runner: resumable after SIGKILL, exactly-once records, clean cancel, honest summaries. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { runEvaluation, type EvalOptions } from '../../src/eval/runner';
import type { EngineKind, RunSummary } from '../../src/shared/protocol';
import { ENGINE_KINDS } from '../support/engines';
import { testPython } from '../support/python';
import { makeModel, tempDir, DEMO_CORPUS } from '../support/models';
import { CLI as cli, demoEvalArgs } from '../support/cli';

const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
const cache = tempDir('cache');

function recordedIds(runDir: string): string[] {
  return fs
    .readFileSync(path.join(runDir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => JSON.parse(l).questions.map((q: { id: string }) => q.id));
}
const summaryOf = (runDir: string) => JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as RunSummary;
const engineArgs = (out: string, kind: EngineKind) => [...evalArgs(out), '--engine', kind, ...(kind === 'pytorch' ? ['--python', testPython()] : [])];
const evalArgs = (out: string, extra: string[] = []) => demoEvalArgs({ model, out, cache, limit: 6, shots: 2, batchSize: 2 }, extra);

for (const kind of ENGINE_KINDS) {
  test(`[${kind}] a run killed with SIGKILL and resumed records every question exactly once and matches an uninterrupted run`, async () => {
    const evalArgs = (out: string) => engineArgs(out, kind);
    const whole = tempDir('run-whole');
    const r = spawnSync(process.execPath, [cli, ...evalArgs(whole)], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const expected = summaryOf(whole);
    assert.equal(expected.questions, 36, '6 subjects x 6 questions');
    assert.equal(expected.complete, true);

    const killed = tempDir('run-killed');
    const child = spawn(process.execPath, [cli, ...evalArgs(killed)], { stdio: 'ignore' });
    const records = path.join(killed, 'records.jsonl');
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        const lines = fs.existsSync(records) ? fs.readFileSync(records, 'utf8').split('\n').filter(Boolean).length : 0;
        if (lines >= 3) {
          clearInterval(timer);
          child.kill('SIGKILL');
          resolve();
        }
      }, 5);
      child.on('exit', () => {
        clearInterval(timer);
        reject(new Error('the run finished before it could be killed'));
      });
    });
    await new Promise((res) => child.on('exit', res));
    const partial = recordedIds(killed);
    assert.ok(partial.length >= 6 && partial.length < 36, `killed after ${partial.length} questions`);
    // Simulate the torn line a kill during a write leaves behind.
    fs.appendFileSync(records, '{"batch": 99, "questions": [{"id": "tor');
    const resumed = spawnSync(process.execPath, [cli, ...evalArgs(killed)], { encoding: 'utf8' });
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`resuming: ${partial.length} of 36 questions already recorded`));
    assert.match(resumed.stderr, /cut off a torn last record/);
    const ids = recordedIds(killed);
    assert.equal(ids.length, 36);
    assert.equal(new Set(ids).size, 36, 'no question recorded twice');
    const got = summaryOf(killed);
    assert.equal(got.questions, 36);
    assert.equal(got.accuracy.micro, expected.accuracy.micro);
    assert.deepEqual(
      got.layers.map((l) => l.activationCounts),
      expected.layers.map((l) => l.activationCounts),
    );
    assert.deepEqual(
      got.layers.map((l) => l.neverActivated),
      expected.layers.map((l) => l.neverActivated),
    );
  });
}

test('resuming with different options is refused with the reason', () => {
  const dir = tempDir('run-mismatch');
  assert.equal(spawnSync(process.execPath, [cli, ...evalArgs(dir, ['--subjects', 'marketing'])], { encoding: 'utf8' }).status, 0);
  const r = spawnSync(process.execPath, [cli, ...evalArgs(dir, ['--subjects', 'marketing', '--token-scope', 'all'])], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /holds a run with a different tokenScope \("answer" vs "all"\)/);
});

test('resuming a run on another engine is refused: one run never mixes results of two engines', () => {
  const dir = tempDir('run-engines');
  assert.equal(spawnSync(process.execPath, [cli, ...evalArgs(dir, ['--subjects', 'marketing', '--limit', '2'])], { encoding: 'utf8' }).status, 0);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.model.engine, { kind: 'onnxruntime', device: 'cpu', dtype: 'float32' });
  const r = spawnSync(process.execPath, [cli, ...evalArgs(dir, ['--subjects', 'marketing', '--limit', '2', '--engine', 'pytorch', '--python', testPython()])], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /holds a run with a different .*engine[^;]*"onnxruntime" vs "pytorch"/);
});

test('cancel stops after the batch in flight, keeps what was recorded and writes an incomplete summary; resume completes it', async () => {
  const engine = new Engine();
  const runDir = tempDir('run-cancel');
  const opts: EvalOptions = {
    modelPath: model,
    load: { executionProvider: 'cpu', cacheDir: cache },
    dataPath: DEMO_CORPUS,
    split: 'test',
    shots: 1,
    subjects: ['marketing', 'world_religions'],
    limitPerSubject: 5,
    tokenScope: 'question',
    batchSize: 2,
    runDir,
  };
  try {
    const ac = new AbortController();
    const first = await runEvaluation(engine, opts, { signal: ac.signal, onProgress: (p) => p.done >= 4 && ac.abort() });
    assert.equal(first.cancelled, true);
    assert.equal(first.summary.complete, false);
    const n = recordedIds(runDir).length;
    assert.ok(n >= 4 && n < 10);
    assert.equal(first.summary.questions, n);
    const second = await runEvaluation(engine, opts);
    assert.equal(second.cancelled, false);
    assert.equal(second.resumedQuestions, n);
    assert.equal(second.summary.complete, true);
    assert.equal(second.summary.questions, 10);
    assert.equal(second.summary.tokenScope, 'question');
    assert.equal(Object.keys(second.summary.accuracy.perSubject).sort().join(), 'marketing,world_religions');
    assert.ok(second.summary.tokens.prefixReusedTokens > 0, 'the shared few-shot prefix was reused');
  } finally {
    await engine.dispose();
  }
});

test('never-activated counts shrink as the token scope widens (answer >= question >= all) on the same questions', async () => {
  const engine = new Engine();
  const never: Record<string, number> = {};
  try {
    for (const scope of ['answer', 'question', 'all'] as const) {
      const out = await runEvaluation(engine, {
        modelPath: model,
        load: { executionProvider: 'cpu', cacheDir: cache },
        dataPath: DEMO_CORPUS,
        split: 'test',
        shots: 1,
        subjects: ['abstract_algebra'],
        limitPerSubject: 4,
        tokenScope: scope,
        batchSize: 4,
        runDir: tempDir(`run-${scope}`),
      });
      never[scope] = out.summary.neverActivatedTotal;
      const counted = out.summary.layers[0].activationCounts.reduce((a, b) => a + b, 0);
      if (scope === 'answer') assert.equal(counted, 4 * out.summary.model.topK, 'one answer position per question, k slots');
    }
  } finally {
    await engine.dispose();
  }
  assert.ok(never.answer >= never.question && never.question >= never.all, JSON.stringify(never));
  assert.ok(never.answer > never.all, 'the answer position alone leaves more experts unused');
});
