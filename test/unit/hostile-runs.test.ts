/**
 * Run folders edited or crafted by someone else (issue 21 items 9, 11, 12 and duplicated records): impossible
 * summaries are refused by name before compare or experiment use them; a shard is not a baseline; an
 * experiment or comparison on other weights than the baseline's is refused; a repeated record line cannot
 * double the paired counts. Needs `node esbuild.mjs` first (compare runs dist/cli.js).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readQuestionResults, readSummary } from '../../src/eval/runFolder';
import { checkBaselineWeights, prepareExperiment } from '../../src/eval/experiment';
import { REPO_ROOT, tempDir } from '../support/models';
import { soundSummary, type SummaryJson } from '../support/summaries';

const root = tempDir('hostile-runs');
const cli = path.join(REPO_ROOT, 'dist', 'cli.js');

const summary = soundSummary;

const question = (i: number, correct: boolean) => ({
  id: `anatomy/${i}`,
  subject: 'anatomy',
  gold: 0,
  predicted: correct ? 0 : 1,
  correct,
  logProbs: [-1, -2, -3, -4],
  numTokens: 5,
  shotsUsed: 0,
  answerExperts: [],
});

let n = 0;
function runFolder(opts: { summaryText?: string; questions?: number; manifest?: Record<string, unknown>; records?: string }): string {
  const dir = path.join(root, `run-${n++}`);
  fs.mkdirSync(dir);
  const q = opts.questions ?? 4;
  fs.writeFileSync(path.join(dir, 'summary.json'), opts.summaryText ?? JSON.stringify(summary(q)));
  const qs = Array.from({ length: q }, (_, i) => question(i, i % 2 === 0));
  fs.writeFileSync(path.join(dir, 'records.jsonl'), opts.records ?? JSON.stringify({ batch: 0, questions: qs }) + '\n');
  fs.writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({
      format: 'moe-scope.run',
      version: 2,
      model: { path: '/m', files: { 'config.json': { size: 1, sha256: 'a' } } },
      totalQuestions: q,
      ...opts.manifest,
    }),
  );
  return dir;
}

test('impossible summaries are refused by file and field (negative counts, accuracies outside 0..1, more correct than asked)', () => {
  const bad = (mutate: (s: SummaryJson) => void, text?: (t: string) => string) => {
    const s = summary(4);
    mutate(s);
    const dir = runFolder({ summaryText: text ? text(JSON.stringify(s)) : JSON.stringify(s) });
    assert.throws(
      () => readSummary(dir),
      (e: Error) => e.message.startsWith(path.join(dir, 'summary.json')) && /field "/.test(e.message),
    );
  };
  bad((s) => (s.questions = -5));
  bad((s) => (s.questions = 2.5));
  bad((s) => (s.accuracy.micro = -3.5));
  bad(
    (s) => (s.accuracy.micro = 12345),
    (t) => t.replace('"micro":12345', '"micro":1e999'),
  );
  bad((s) => (s.accuracy.macro = null));
  bad((s) => (s.accuracy.perSubject!.anatomy.correct = 9));
  bad((s) => (s.accuracy.perSubject!.anatomy.questions = 3));
  bad((s) => delete s.accuracy.perSubject);
  bad((s) => delete s.dataset);
  assert.equal(readSummary(runFolder({}))?.questions, 4, 'a sound summary still reads');
});

test('compare refuses an impossible summary with a non-zero status instead of printing Infinity% or -5 questions', () => {
  const a = runFolder({});
  const s = summary(4);
  s.questions = -5;
  const b = runFolder({ summaryText: JSON.stringify(s) });
  const r = spawnSync(process.execPath, [cli, 'compare', a, b], { encoding: 'utf8' });
  assert.notEqual(r.status, 0, r.stdout);
  assert.match(r.stderr, /summary\.json: field "questions" is -5/);
  assert.doesNotMatch(r.stdout, /Infinity|NaN|-5 questions/);
});

test('a repeated record line is refused, not counted twice in the paired statistics', () => {
  const line = JSON.stringify({ batch: 0, questions: [question(0, true), question(1, false)] }) + '\n';
  const dir = runFolder({ questions: 2, records: line + line });
  assert.throws(() => readQuestionResults(dir), /records\.jsonl:2: question "anatomy\/0" is recorded again \(first on line 1\)/);
});

test('compare refuses two runs on different model weights unless asked, then warns', () => {
  const a = runFolder({});
  const b = runFolder({ manifest: { model: { path: '/m', files: { 'config.json': { size: 1, sha256: 'b' } } } } });
  const r = spawnSync(process.execPath, [cli, 'compare', a, b], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /ran on other model weights than .*different config\.json\.sha256 \("a" vs "b"\).*--different-weights/);
  const ok = spawnSync(process.execPath, [cli, 'compare', a, b, '--different-weights'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /warning: different model weights/);
});

test('experiment --baseline refuses a shard', () => {
  const dir = runFolder({ manifest: { shard: { index: 1, count: 3 } } });
  assert.throws(
    () => prepareExperiment(dir, { kind: 'prune-never-activated' } as never, path.join(root, 'exp'), { load: {} as never, batchSize: 1 }),
    /manifest\.json: field "shard": .* holds shard 1\/3 of a run, not a whole run; merge its shards/,
  );
});

test("experiment refuses a baseline whose model files changed since it ran (the manifest's fingerprint)", async () => {
  const model = path.join(root, 'model');
  fs.mkdirSync(model);
  fs.writeFileSync(path.join(model, 'config.json'), '{"x": 1}');
  const dir = runFolder({ manifest: { model: { path: model, files: { 'config.json': { size: 8, sha256: '0'.repeat(64) } } } } });
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
  const cacheFile = path.join(root, 'hash-cache.json');
  await assert.rejects(
    checkBaselineWeights({ dir, manifest }, { hashCacheFile: cacheFile }),
    /manifest\.json: the model at .*model is not the one this baseline ran on \(different config\.json\.sha256/,
  );
  const sha = (await import('node:crypto')).createHash('sha256').update('{"x": 1}').digest('hex');
  manifest.model.files['config.json'] = { size: 8, sha256: sha };
  await checkBaselineWeights({ dir, manifest }, { hashCacheFile: cacheFile });
});

test('merge names the shard and line of a bad record and writes nothing', () => {
  const shard = path.join(root, `shard-${n++}`);
  fs.mkdirSync(shard);
  fs.writeFileSync(
    path.join(shard, 'manifest.json'),
    JSON.stringify({
      format: 'moe-scope.run',
      version: 2,
      model: { path: '/m', numLayers: 2, numExperts: 4, topK: 2, files: {}, answerScoring: 'single-token' },
      tokenScope: 'answer',
      shard: { index: 0, count: 1, batches: [0], questionIds: ['anatomy/0'], planBatches: 1, planQuestions: 1 },
    }),
  );
  const rec = { batch: 0, questions: [question(0, true)], tokens: { computed: 1, padding: 0, prefixReused: 0 }, seconds: 1, delta: { shape: [9, 9, 9] } };
  fs.writeFileSync(path.join(shard, 'records.jsonl'), JSON.stringify(rec) + '\n');
  const out = path.join(root, `merged-${n++}`);
  const r = spawnSync(process.execPath, [cli, 'merge', shard, '--out', out], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    new RegExp(`${path.join(shard, 'records.jsonl').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:1: field "delta" does not have this run's shape`),
  );
  assert.equal(fs.existsSync(path.join(out, 'records.jsonl')), false, 'the merged output was written before the shards were checked');
});
