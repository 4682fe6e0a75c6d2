/**
 * Every reader of a file that comes from outside refuses, by name and at once, what is not a bounded
 * regular file of its folder: a FIFO (no writer: would block forever), a link to /dev/zero (would fill
 * memory), a folder, a link leading out of the run or sweep folder, an oversized file. Every writer of a
 * run or sweep folder refuses to write through a link out of it, and leaves the link's target untouched.
 * Plus a guard: no source file outside the allow-list opens files by itself (every reader goes through
 * src/shared/safeFiles.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readJson, readJsonAsync } from '../../src/shared/readJson';
import { readRegularFile } from '../../src/shared/safeFiles';
import { RecordWriter, readManifest, readQuestionResults, readRecords, readSummary, readSummaryAsync, writeJsonAtomic } from '../../src/eval/runFolder';
import { createAccumulator } from '../../src/analysis/accumulator';
import { readPlan } from '../../src/sweep/plan';
import { readSpec } from '../../src/sweep/spec';
import { interventionFromOptions } from '../../src/cli/evalRun';
import { mergeShards } from '../../src/eval/merge';
import { REPO_ROOT, tempDir } from '../support/models';

const root = tempDir('safe-files');
const outside = path.join(root, 'outside');
fs.mkdirSync(outside);
const secret = path.join(outside, 'secret.jsonl');
const SECRET = '{"keep": "this file is outside every run folder"}\n';
fs.writeFileSync(secret, SECRET);

type Hostile = 'fifo' | 'dev-zero' | 'folder' | 'link-out' | 'huge';
const HOSTILE: Hostile[] = ['fifo', 'dev-zero', 'folder', 'link-out'];
const EXPECT: Record<Hostile, RegExp> = {
  fifo: /not a regular file \(a FIFO\)/,
  'dev-zero': /not a regular file \(a device\)|outside|symbolic link/,
  folder: /not a regular file \(a folder\)|EISDIR/,
  'link-out': /outside|symbolic link/,
  huge: /more than the/,
};

let n = 0;
/** A fresh folder whose file `name` is the hostile thing. */
function plant(kind: Hostile, name: string): { dir: string; file: string } {
  const dir = path.join(root, `case-${n++}`);
  fs.mkdirSync(dir);
  const file = path.join(dir, name);
  if (kind === 'fifo') execFileSync('mkfifo', [file]);
  else if (kind === 'dev-zero') fs.symlinkSync('/dev/zero', file);
  else if (kind === 'folder') fs.mkdirSync(file);
  else if (kind === 'link-out') fs.symlinkSync(secret, file);
  return { dir, file };
}

async function refuses(what: string, kind: Hostile, read: () => unknown, file: string): Promise<void> {
  const t0 = Date.now();
  let error: Error | null = null;
  try {
    await read();
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error, `${what} accepted ${kind}`);
  assert.match(error.message, EXPECT[kind], `${what} on ${kind}: ${error.message}`);
  assert.ok(error.message.includes(path.basename(file)), `${what} on ${kind}: the message does not name the file: ${error.message}`);
  assert.ok(Date.now() - t0 < 5000, `${what} on ${kind} took ${Date.now() - t0} ms`);
}

const acc = () => createAccumulator({ numLayers: 2, numExperts: 4, topK: 2 }, 'answer');
/** Each reader, given a folder, and the file name it reads there. */
const READERS: { what: string; name: string; read: (dir: string, file: string) => unknown }[] = [
  { what: 'readJson', name: 'x.json', read: (_d, f) => readJson(f) },
  { what: 'readJsonAsync', name: 'x.json', read: (_d, f) => readJsonAsync(f) },
  { what: 'readRegularFile', name: 'x.bin', read: (d, f) => readRegularFile(f, { maxBytes: 1 << 20, within: d }) },
  { what: 'readManifest', name: 'manifest.json', read: (d) => readManifest(d) },
  { what: 'readSummary', name: 'summary.json', read: (d) => readSummary(d) },
  { what: 'readSummaryAsync', name: 'summary.json', read: (d) => readSummaryAsync(d) },
  { what: 'readRecords (eval resume)', name: 'records.jsonl', read: (d) => readRecords(d, acc()) },
  { what: 'readQuestionResults (compare)', name: 'records.jsonl', read: (d) => readQuestionResults(d) },
  { what: 'readPlan (sweep --merge)', name: 'sweep.json', read: (d) => readPlan(d) },
  { what: 'readSpec (sweep SPEC)', name: 'spec.json', read: (_d, f) => readSpec(f) },
  { what: '--router-bias', name: 'bias.json', read: (_d, f) => interventionFromOptions(path.join(REPO_ROOT, 'nonexistent-model'), undefined, f) },
];

for (const r of READERS)
  test(`${r.what} refuses a FIFO, a link to /dev/zero, a folder and a link out of its folder`, async () => {
    for (const kind of HOSTILE) {
      // A link leaving the folder is what a cloned workspace can plant; readers given a file path by the user
      // (readJson, a SPEC, --router-bias) follow it: the user named it.
      if (kind === 'link-out' && ['readJson', 'readJsonAsync', 'readSpec (sweep SPEC)', '--router-bias'].includes(r.what)) continue;
      const { dir, file } = plant(kind, r.name);
      await refuses(r.what, kind, () => r.read(dir, file), file);
    }
  });

test('readers bound the size before reading', async () => {
  const { dir, file } = plant('huge', 'x.bin');
  fs.writeFileSync(file, Buffer.alloc(2 << 20));
  await refuses('readRegularFile', 'huge', () => readRegularFile(file, { maxBytes: 1 << 20, within: dir }), file);
  await refuses('readJson', 'huge', () => readJson(file, { maxBytes: 1 << 20 }), file);
});

test('merge refuses a shard whose records.jsonl is a FIFO or links out, and writes nothing', () => {
  for (const kind of ['fifo', 'link-out'] as const) {
    const { dir, file } = plant(kind, 'records.jsonl');
    const manifest = {
      format: 'moe-scope.run',
      version: 2,
      model: { files: {}, answerScoring: 'x' },
      shard: { index: 0, count: 1, batches: [0], questionIds: ['q'], planBatches: 1, planQuestions: 1 },
    };
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    const out = path.join(root, `merged-${n++}`);
    assert.throws(
      () => mergeShards(out, [dir]),
      (e: Error) => EXPECT[kind].test(e.message) && e.message.includes(file),
    );
    assert.equal(fs.existsSync(path.join(out, 'records.jsonl')), false);
  }
});

test('resume never truncates or rewrites a records.jsonl that links out of the run folder', () => {
  const { dir } = plant('link-out', 'records.jsonl');
  fs.appendFileSync(secret, '{"torn');
  try {
    assert.throws(() => readRecords(dir, acc()), /symbolic link/);
    assert.throws(() => new RecordWriter(dir), /symbolic link/);
    assert.equal(fs.readFileSync(secret, 'utf8'), SECRET + '{"torn', 'the link target was modified');
  } finally {
    fs.writeFileSync(secret, SECRET);
  }
});

test('summaries and manifests are never written through a link, nor into a folder that leads out', () => {
  const dir = path.join(root, `case-${n++}`);
  fs.mkdirSync(dir);
  fs.symlinkSync(secret, path.join(dir, 'summary.json'));
  assert.throws(() => writeJsonAtomic(path.join(dir, 'summary.json'), { ok: true }), /summary\.json: a symbolic link/);
  assert.equal(fs.readFileSync(secret, 'utf8'), SECRET);
  const linked = path.join(root, `linked-${n++}`);
  fs.symlinkSync(outside, linked);
  assert.throws(() => writeJsonAtomic(path.join(linked, 'x.json'), {}, dir), /outside/);
});

test('no source file opens files except through safeFiles.ts (or an allow-listed reader with its own checks)', () => {
  // Each allowed file with why its own opens are safe.
  const ALLOWED: Record<string, string> = {
    'src/shared/safeFiles.ts': 'the reader itself',
    'src/engines/onnxruntime/formats/safetensors.ts': 'bounded header reads of files the checkpoint reader checked (checkpoint-safety tests)',
    'src/engines/onnxruntime/checkpoint.ts': 'tensor reads through the checked safetensors index',
    'src/engines/onnxruntime/weightAnalysis/reader.ts': 'tensor reads through the checked checkpoint',
    'src/engines/onnxruntime/weights.ts': 'writes its own cache files',
    'src/engines/onnxruntime/webgpu.ts': 'system Vulkan ICD files and its own cache marker',
    'src/engines/onnxruntime/doctor.ts': 'the ONNX graph this engine wrote',
    'src/engines/onnxruntime/engine.ts': 'Checkpoint.open (not a file open)',
    'src/engines/onnxruntime/demo/makeDemoModel.ts': 'the bundled demo corpus',
    'src/engines/onnxruntime/runtime.ts': 'writes its own graph cache',
    'src/eval/runLock.ts': "/proc/PID/stat and the lock's exclusive create",
    'src/eval/fingerprint.ts': 'hashes files it checked are regular (statSync + isFile)',
    'src/cli/evalRun.ts': 'Checkpoint.open (not a file open)',
    'src/engines/onnxruntime/demo/bpeTrainer.ts': 'writes the demo tokenizer',
    'src/engines/onnxruntime/precision/choose.ts': 'the kernel file /proc/meminfo',
    'src/eval/planCache.ts': 'writes its own cache file (reads go through readRegularFile)',
  };
  const offenders: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const rel = path.relative(REPO_ROOT, p);
        if (ALLOWED[rel]) continue;
        const text = fs.readFileSync(p, 'utf8');
        const m = /\b(readFileSync|readFile|createReadStream|openSync|promises\.open)\(|\bfsp?\.open\(/.exec(text);
        if (m) offenders.push(`${rel}: ${m[0]}`);
      }
    }
  };
  walk(path.join(REPO_ROOT, 'src'));
  assert.deepEqual(offenders, [], 'files that open files by themselves: read through src/shared/safeFiles.ts');
});
