/**
 * Sharded evaluation: the partition rule, and shards 0/3, 1/3, 2/3 + merge against the unsharded run on
 * a demo model through the bundled command line (needs `node esbuild.mjs` first).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { partitionBatches, parseShard, SUBJECT_BOUNDARY_SLACK, type WeightedBatch } from '../../src/eval/shard';
import { acquireRunLock } from '../../src/eval/runLock';
import type { RunSummary } from '../../src/shared/protocol';
import { makeModel, tempDir } from '../support/models';
import { demoEvalArgs, runCli } from '../support/cli';
import { mulberry32 } from '../../src/engines/onnxruntime/demo/random';

test('parseShard accepts I/N with 0 <= I < N and names the problem otherwise', () => {
  assert.deepEqual(parseShard('2/3'), { index: 2, count: 3 });
  assert.throws(() => parseShard('3/3'), /I must be in 0\.\.2/);
  assert.throws(() => parseShard('0/0'), /N must be at least 1/);
  assert.throws(() => parseShard('1-3'), /must look like I\/N/);
});

test('partitionBatches: every batch in exactly one contiguous shard, deterministic, balanced by tokens', () => {
  const rand = mulberry32(7);
  const batches: WeightedBatch[] = Array.from({ length: 200 }, (_, i) => ({ group: `s${Math.floor(i / 9)}`, tokens: 50 + Math.floor(rand() * 400) }));
  const total = batches.reduce((a, b) => a + b.tokens, 0);
  const maxBatch = Math.max(...batches.map((b) => b.tokens));
  for (const n of [1, 2, 3, 7]) {
    const owner = partitionBatches(batches, n);
    assert.deepEqual(partitionBatches(batches, n), owner, 'deterministic');
    assert.equal(owner.length, batches.length);
    for (let i = 1; i < owner.length; i++) assert.ok(owner[i] >= owner[i - 1], 'contiguous, in order');
    assert.deepEqual(
      [...new Set(owner)],
      Array.from({ length: n }, (_, i) => i),
      'every shard non-empty',
    );
    const loads = Array.from({ length: n }, (_, s) => batches.filter((_, i) => owner[i] === s).reduce((a, b) => a + b.tokens, 0));
    // Each cut moves at most the slack to reach a subject boundary, else lands on the nearest batch boundary.
    for (const l of loads)
      assert.ok(Math.abs(l - total / n) <= (2 * total * SUBJECT_BOUNDARY_SLACK) / n + 2 * maxBatch, `shard load ${l} vs ideal ${total / n}`);
  }
});

test('partitionBatches cuts at a subject boundary when one is near the balanced point, inside a subject otherwise', () => {
  // Two subjects of 10 equal batches: the 2-way cut falls exactly on the subject boundary.
  const two = Array.from({ length: 20 }, (_, i) => ({ group: i < 10 ? 'a' : 'b', tokens: 100 }));
  assert.equal(partitionBatches(two, 2).indexOf(1), 10);
  // Subject a is 19 batches, b 21: the boundary (19) is within the slack (5% of a 20-batch shard) of the
  // balanced point (20); with a 17/23 split it is not, and the cut splits b at the balanced point.
  const uneven = (first: number) => Array.from({ length: 40 }, (_, i) => ({ group: i < first ? 'a' : 'b', tokens: 100 }));
  assert.equal(partitionBatches(uneven(19), 2).indexOf(1), 19, 'moved to the subject boundary');
  assert.equal(partitionBatches(uneven(17), 2).indexOf(1), 20, 'balanced inside the subject');
  assert.equal(partitionBatches(uneven(17), 2, 0.25).indexOf(1), 17, 'a larger slack prefers the boundary');
  // One subject only: cut at the balanced batch boundary.
  const one = Array.from({ length: 9 }, () => ({ group: 'a', tokens: 100 }));
  assert.deepEqual(partitionBatches(one, 3), [0, 0, 0, 1, 1, 1, 2, 2, 2]);
  // Fewer batches than shards: the last shards are empty, nothing is lost.
  const few = partitionBatches(
    [
      { group: 'a', tokens: 5 },
      { group: 'b', tokens: 5 },
    ],
    3,
  );
  assert.equal(few.length, 2);
  assert.ok(few[0] <= few[1] && few[1] <= 2 && few[0] !== few[1], `two batches in two of three shards: ${few}`);
});

// ---------------------------------------------------------------------------------------------------
// Shards + merge = the unsharded run, on the demo model.

const model = makeModel({ family: 'olmoe', overrides: { layers: 4 } });
const cache = tempDir('cache');
const run = (args: string[]) => runCli(args);
const evalArgs = (out: string, extra: string[]) => demoEvalArgs({ model, out, cache, shots: 2, batchSize: 2 }, extra);
const summaryOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'summary.json'), 'utf8')) as RunSummary;
const recordsOf = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { batch: number; seconds: number; tokens: unknown; questions: { id: string }[] });

function evalOk(out: string, extra: string[]): void {
  const r = run(evalArgs(out, extra));
  assert.equal(r.status, 0, r.stderr);
}

/** Runs the whole evaluation and its three shards, merges them, and returns the folders. */
function wholeAndMerged(extra: string[]) {
  const root = tempDir('shards');
  const whole = path.join(root, 'whole');
  evalOk(whole, extra);
  const shards = [0, 1, 2].map((i) => path.join(root, `shard${i}`));
  shards.forEach((dir, i) => evalOk(dir, [...extra, '--shard', `${i}/3`]));
  const merged = path.join(root, 'merged');
  const m = run(['merge', '--out', merged, ...shards]);
  assert.equal(m.status, 0, m.stderr);
  return { root, whole, shards, merged };
}

function assertSameRecords(whole: string, merged: string, { tokens }: { tokens: boolean }): void {
  const a = recordsOf(whole);
  const b = recordsOf(merged);
  assert.deepEqual(
    b.map((r) => r.batch),
    a.map((r) => r.batch),
    'same batches in the same order',
  );
  const ids = b.flatMap((r) => r.questions.map((q) => q.id));
  assert.equal(new Set(ids).size, ids.length, 'no question recorded twice');
  // Only the batch's wall time differs, and (when a cut split a subject) the prefix tokens recomputed.
  const strip = (r: (typeof a)[number]) => ({ ...r, seconds: 0, tokens: tokens ? r.tokens : null });
  assert.deepEqual(b.map(strip), a.map(strip));
}

/** Subjects whose questions landed in more than one shard (each such cut recomputes a few-shot prefix). */
function splitSubjects(shards: string[]): string[] {
  const owners = new Map<string, Set<number>>();
  shards.forEach((dir, i) => {
    for (const r of recordsOf(dir))
      for (const q of r.questions as { id: string; subject?: string }[]) owners.set(q.subject!, (owners.get(q.subject!) ?? new Set()).add(i));
  });
  return [...owners].filter(([, s]) => s.size > 1).map(([subject]) => subject);
}

test('shards 0/3, 1/3, 2/3 + merge equal the unsharded run (six subjects)', () => {
  const { whole, shards, merged } = wholeAndMerged(['--limit', '4']);
  const perShard = shards.map((d) => recordsOf(d).flatMap((r) => r.questions.map((q) => q.id)));
  assert.ok(
    perShard.every((ids) => ids.length > 0),
    `every shard has questions: ${perShard.map((p) => p.length)}`,
  );
  const split = splitSubjects(shards);
  assertSameRecords(whole, merged, { tokens: split.length === 0 });
  const a = summaryOf(whole);
  const b = summaryOf(merged);
  assert.equal(a.questions, 24);
  assert.equal(b.complete, true);
  // Everything but the elapsed time is identical, and the token counts too unless a cut split a subject.
  if (split.length === 0) assert.deepEqual({ ...b, elapsedSeconds: 0 }, { ...a, elapsedSeconds: 0 });
  else {
    assert.deepEqual({ ...b, elapsedSeconds: 0, tokens: null }, { ...a, elapsedSeconds: 0, tokens: null });
    assert.ok(b.tokens.computed > a.tokens.computed, `a split subject (${split.join(', ')}) computes its prefix again`);
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(merged, 'manifest.json'), 'utf8'));
  assert.equal(manifest.shard, undefined);
  assert.deepEqual(manifest.mergedFrom, shards);
});

test('cuts on subject boundaries: the merged summary is identical to the unsharded one, token counts included', () => {
  // Two subjects of one question each, batch size 1, two shards: the only possible cut is the subject boundary.
  const root = tempDir('shards-aligned');
  const extra = ['--subjects', 'marketing,world_religions', '--limit', '1', '--batch-size', '1'];
  const whole = path.join(root, 'whole');
  evalOk(whole, extra);
  const shards = [0, 1].map((i) => path.join(root, `shard${i}`));
  shards.forEach((dir, i) => evalOk(dir, [...extra, '--shard', `${i}/2`]));
  assert.deepEqual(splitSubjects(shards), []);
  const merged = path.join(root, 'merged');
  const m = run(['merge', '--out', merged, ...shards]);
  assert.equal(m.status, 0, m.stderr);
  assertSameRecords(whole, merged, { tokens: true });
  assert.deepEqual({ ...summaryOf(merged), elapsedSeconds: 0 }, { ...summaryOf(whole), elapsedSeconds: 0 });
});

test('a cut inside a subject still merges to the same records and numbers; only the recomputed prefix tokens differ', () => {
  const { whole, shards, merged } = wholeAndMerged(['--subjects', 'marketing', '--limit', '12']);
  assert.ok(
    shards.every((d) => recordsOf(d).length > 0),
    'the one subject is split three ways',
  );
  assertSameRecords(whole, merged, { tokens: false });
  const a = summaryOf(whole);
  const b = summaryOf(merged);
  assert.deepEqual({ ...b, elapsedSeconds: 0, tokens: null }, { ...a, elapsedSeconds: 0, tokens: null });
  assert.ok(b.tokens.computed > a.tokens.computed, 'shards 1 and 2 computed the few-shot prefix again');
});

test('merge refuses overlapping, missing, foreign, unfinished and unsharded folders with the reason', () => {
  const root = tempDir('merge-bad');
  const base = ['--subjects', 'marketing,world_religions', '--limit', '3'];
  const shard = (name: string, spec: string, extra: string[] = []) => {
    const dir = path.join(root, name);
    evalOk(dir, [...base, ...extra, '--shard', spec]);
    return dir;
  };
  const s0 = shard('s0', '0/3');
  const s1 = shard('s1', '1/3');
  const s2 = shard('s2', '2/3');
  const refuse = (dirs: string[], pattern: RegExp) => {
    const out = path.join(root, `out-${Math.random().toString(36).slice(2)}`);
    const r = run(['merge', '--out', out, ...dirs]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, pattern);
    assert.ok(!fs.existsSync(path.join(out, 'records.jsonl')), 'nothing written');
  };
  refuse([s0, s1], /incomplete partition: shard 2\/3 missing/);
  const copy = path.join(root, 's1-copy');
  fs.cpSync(s1, copy, { recursive: true });
  refuse([s0, s1, copy, s2], /overlapping shards: .*s1 and .*s1-copy are both shard 1\/3/);
  refuse([s0, s1, shard('s2-other-shots', '2/3', ['--shots', '1'])], /belongs to a different run .*different shots \(2 vs 1\)/);
  refuse([s0, s1, shard('s2-of-two', '1/2')], /belongs to a different run .*shard\.count \(3 vs 2\)/);
  const whole = path.join(root, 'whole');
  evalOk(whole, base);
  refuse([s0, s1, whole], /field "shard" is missing; .* holds an unsharded run/);
  // An unfinished shard: drop its last recorded batch.
  const cut = path.join(root, 's2-cut');
  fs.cpSync(s2, cut, { recursive: true });
  const lines = fs.readFileSync(path.join(cut, 'records.jsonl'), 'utf8').split('\n').filter(Boolean);
  fs.writeFileSync(
    path.join(cut, 'records.jsonl'),
    lines
      .slice(0, -1)
      .map((l) => l + '\n')
      .join(''),
  );
  refuse([s0, s1, cut], /shard 2\/3 in .*s2-cut is unfinished: \d+ of \d+ batches recorded/);
  // And the good set still merges.
  const ok = run(['merge', '--out', path.join(root, 'merged'), s2, s0, s1]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(summaryOf(path.join(root, 'merged')).questions, 6);
});

test('an eval refuses a run folder another live process holds with status 75 (retry later), naming the holder', () => {
  const dir = tempDir('locked');
  const lock = acquireRunLock(dir);
  try {
    const r = run(evalArgs(dir, ['--limit', '1']));
    assert.equal(r.status, 75, r.stderr);
    assert.match(r.stderr, new RegExp(`in use by another evaluation \\(process ${process.pid} on `));
  } finally {
    lock.release();
  }
});
