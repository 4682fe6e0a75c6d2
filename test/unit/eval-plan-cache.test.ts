/**
 * The plan cache (src/eval/planCache.ts): a round trip gives the same plan; a corrupt, truncated, foreign
 * or mismatched file is refused with the reason; the runner reads it on every later run and shard, and
 * rebuilds it (same results) when it cannot be trusted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { planEvaluation } from '../../src/eval/plan';
import { planCacheFile, planCacheKey, readPlanCache, writePlanCache, type PlanCacheKey } from '../../src/eval/planCache';
import { runEvaluation, selectQuestions, type EvalOptions } from '../../src/eval/runner';
import type { TokenizeResult } from '../../src/shared/protocol';
import { planDifferences, tokenizerBackend } from '../support/plans';
import { NullEngine } from '../support/nullEngine';
import { makeModel, tempDir, DEMO_CORPUS } from '../support/models';

function toyEncode(text: string): TokenizeResult {
  const tokens = [...text.matchAll(/\w+|\s+|[^\w\s]/g)].map((m) => ({
    id: (m[0].charCodeAt(0) * 31 + m[0].length) % 4000,
    text: m[0],
    start: m.index,
    end: m.index + m[0].length,
  }));
  return { ids: tokens.map((t) => t.id), tokens };
}

const KEY_FIELDS = {
  modelFiles: { 'tokenizer.json': { size: 10, sha256: 'ab' }, 'model.safetensors': { size: 5, sha256: 'cd' } },
  engine: 'onnxruntime',
  maxPositions: 4096,
  dataset: 'fingerprint',
  split: 'test',
  shots: 5,
  subjects: null,
  limitPerSubject: 0,
};

async function demoPlan() {
  const { questions, dev } = await selectQuestions(DEMO_CORPUS, 'test', undefined, 0, () => {});
  const plan = await planEvaluation(tokenizerBackend(toyEncode), { maxPositions: 4096 }, questions, dev, 5);
  return { plan, questions };
}

test('the key covers the tokenizer files only, and every option the plan depends on', () => {
  const key = planCacheKey(KEY_FIELDS);
  assert.deepEqual(Object.keys(key.tokenizer), ['tokenizer.json'], 'weights do not change a plan');
  const file = planCacheFile('/c', key);
  assert.match(file, /^\/c\/plans\/plan-[0-9a-f]{32}\.bin$/);
  for (const change of [
    { shots: 4 },
    { split: 'val' },
    { maxPositions: 2048 },
    { dataset: 'other' },
    { subjects: ['marketing'] },
    { limitPerSubject: 3 },
    { engine: 'pytorch' },
  ]) {
    assert.notEqual(planCacheFile('/c', planCacheKey({ ...KEY_FIELDS, ...change })), file, JSON.stringify(change));
  }
  const otherTokenizer = planCacheKey({ ...KEY_FIELDS, modelFiles: { 'tokenizer.json': { size: 10, sha256: 'ef' } } });
  assert.notEqual(planCacheFile('/c', otherTokenizer), file);
});

test('a written plan reads back identical, question for question', async () => {
  const dir = tempDir('plan-cache');
  try {
    const { plan, questions } = await demoPlan();
    const key = planCacheKey(KEY_FIELDS);
    const file = planCacheFile(dir, key);
    writePlanCache(file, key, plan);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), [path.basename(file)], 'no temporary file left behind');
    const back = readPlanCache(file, key, questions);
    assert.ok('plan' in back, JSON.stringify(back));
    assert.deepEqual(planDifferences(back.plan, plan), []);
    assert.deepEqual(back.plan.tokenization, plan.tokenization);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupt, truncated, foreign or mismatched cache file is refused with the reason', async () => {
  const dir = tempDir('plan-cache-bad');
  try {
    const { plan, questions } = await demoPlan();
    const key = planCacheKey(KEY_FIELDS);
    const file = planCacheFile(dir, key);
    writePlanCache(file, key, plan);
    const good = fs.readFileSync(file);
    const problem = (bytes: Buffer, k: PlanCacheKey = key, qs = questions) => {
      fs.writeFileSync(file, bytes);
      const r = readPlanCache(file, k, qs);
      assert.ok('problem' in r, 'refused');
      return r.problem;
    };
    const flipped = Buffer.from(good);
    flipped[flipped.length - 3] ^= 0x40;
    assert.match(problem(flipped), /SHA-256 \(corrupt\)/);
    assert.match(problem(good.subarray(0, good.length - 8)), /body of \d+ bytes, expected/);
    assert.match(problem(good.subarray(0, 20)), /truncated header|not JSON/);
    assert.match(problem(Buffer.from('{"not":"a plan"}')), /bad magic/);
    assert.match(problem(good, planCacheKey({ ...KEY_FIELDS, shots: 3 })), /foreign key/);
    assert.match(problem(good, key, questions.slice(1)), /names question .* which the selection does not hold/);
    fs.rmSync(file);
    assert.deepEqual(readPlanCache(file, key, questions), { problem: 'absent' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the runner plans once: later runs and shards read the cache, a corrupt cache is rebuilt, results unchanged', async () => {
  const dir = tempDir('plan-cache-run');
  try {
    const model = makeModel({ family: 'olmoe' }, path.join(dir, 'model'));
    const opts = (runName: string, extra: Partial<EvalOptions> = {}): EvalOptions => ({
      modelPath: model,
      load: { executionProvider: 'cpu', cacheDir: path.join(dir, 'cache') },
      hashCacheFile: path.join(dir, 'hashes.json'),
      dataPath: DEMO_CORPUS,
      split: 'test',
      shots: 5,
      limitPerSubject: 6,
      tokenScope: 'question',
      batchSize: 4,
      runDir: path.join(dir, runName),
      ...extra,
    });
    const run = async (runName: string, extra: Partial<EvalOptions> = {}) => {
      const engine = new NullEngine();
      const logs: string[] = [];
      const out = await runEvaluation(engine, opts(runName, extra), { onLog: (m) => logs.push(m) });
      const records = fs
        .readFileSync(path.join(dir, runName, 'records.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => {
          const { seconds: _seconds, ...rest } = JSON.parse(l) as { seconds: number };
          return rest; // wall time is the one field that differs between identical runs
        });
      return { out, logs, tokenizeCalls: engine.calls.tokenize ?? 0, records };
    };
    const first = await run('a');
    assert.ok(
      first.logs.some((l) => /^planned in .* \d+ prompts joined/.test(l)),
      first.logs.join('\n'),
    );
    assert.ok(first.tokenizeCalls > 0);
    const planFiles = fs.readdirSync(path.join(dir, 'cache', 'plans'));
    assert.equal(planFiles.length, 1);

    const second = await run('b');
    assert.equal(second.tokenizeCalls, 0, 'the second run tokenizes nothing');
    assert.ok(second.logs.some((l) => l.startsWith('plan read from')));
    assert.deepEqual(second.records, first.records, 'same records');

    const shard = await run('s', { shard: { index: 1, count: 2 } });
    assert.equal(shard.tokenizeCalls, 0, 'a shard reads the plan too');

    const file = path.join(dir, 'cache', 'plans', planFiles[0]);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 1;
    fs.writeFileSync(file, bytes);
    const third = await run('c');
    assert.ok(
      third.logs.some((l) => /not used: .*corrupt.*planning again/.test(l)),
      third.logs.join('\n'),
    );
    assert.ok(third.tokenizeCalls > 0, 'planned again');
    assert.deepEqual(third.records, first.records, 'same records after the rebuild');
    const fourth = await run('d');
    assert.equal(fourth.tokenizeCalls, 0, 'the rebuilt cache is used');

    const fresh = await run('e', { planCache: false });
    assert.ok(fresh.tokenizeCalls > 0);
    assert.deepEqual(fresh.records, first.records, 'a plan made without the cache gives the same records');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
