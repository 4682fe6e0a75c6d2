import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DecodedArray } from 'hyparquet';
import { parquetWriteBuffer, type SchemaElement } from 'hyparquet-writer';
import { computeFingerprint, discoverDatasets, loadDataset } from '../../src/mmlu/load';

const FIXTURE = resolve(process.cwd(), 'test/fixtures/mmlu/tree');

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'moe-scope-mmlu-load-'));
  temps.push(d);
  return d;
}
after(async () => {
  for (const d of temps) await rm(d, { recursive: true, force: true });
});

test('tree with data/: every split, reading order dev/val/test, categories.json beside it', async () => {
  const ds = await loadDataset(FIXTURE);
  assert.equal(ds.format, 'mmlu-tree');
  assert.deepEqual(ds.issues, []);
  assert.deepEqual(ds.files, [
    'data/dev/garden_botany_dev.csv',
    'data/dev/kitchen_science_dev.csv',
    'data/test/garden_botany_test.csv',
    'data/test/kitchen_science_test.csv',
    'data/val/kitchen_science_val.csv',
  ]);
  assert.deepEqual(
    ds.questions.map((q) => q.id),
    [
      'garden_botany/dev/0',
      'kitchen_science/dev/0',
      'kitchen_science/dev/1',
      'kitchen_science/val/0',
      'garden_botany/test/0',
      'garden_botany/test/1',
      'garden_botany/test/2',
      'kitchen_science/test/0',
      'kitchen_science/test/1',
      'kitchen_science/test/2',
    ],
  );
  const multi = ds.questions.find((q) => q.id === 'kitchen_science/test/2')!;
  assert.equal(multi.question, 'A recipe says:\nWhisk the egg whites until stiff.\nWhat holds the foam up?');
  assert.equal(multi.source.line, 3);
  assert.equal(ds.questions.find((q) => q.id === 'kitchen_science/test/1')!.question, 'Which of these is an "acid"?');
  assert.equal(ds.questions.find((q) => q.id === 'kitchen_science/test/0')!.question, 'At what temperature (°C) does water boil at sea level?');
  assert.deepEqual(ds.categories, {
    kitchen_science: { subcategories: ['chemistry'], category: 'STEM' },
    garden_botany: { subcategories: ['biology'], category: 'STEM' },
  });
});

test('the other tree shapes: split folders directly, and a single split folder', async () => {
  const splitFolders = await loadDataset(join(FIXTURE, 'data'));
  assert.equal(splitFolders.questions.length, 10);
  assert.deepEqual(splitFolders.files?.[0], 'dev/garden_botany_dev.csv');
  assert.ok(splitFolders.categories, 'categories.json one level up is found');

  const one = await loadDataset(join(FIXTURE, 'data/test'));
  assert.equal(one.format, 'mmlu-tree');
  assert.deepEqual(one.files, ['garden_botany_test.csv', 'kitchen_science_test.csv']);
  assert.equal(one.questions.length, 6);
});

test('split option: a tree reads only that folder; a missing split is an error listing what exists', async () => {
  const dev = await loadDataset(FIXTURE, { split: 'dev' });
  assert.deepEqual(
    dev.questions.map((q) => q.split),
    ['dev', 'dev', 'dev'],
  );
  assert.deepEqual(dev.files, ['data/dev/garden_botany_dev.csv', 'data/dev/kitchen_science_dev.csv']);
  const val = await loadDataset(FIXTURE, { split: 'validation' });
  assert.equal(val.questions.length, 1);

  const dir = await tempDir();
  await cp(join(FIXTURE, 'data/dev'), join(dir, 'data/dev'), { recursive: true });
  await assert.rejects(loadDataset(dir, { split: 'test' }), /has no "test" split \(it has: dev\)/);
});

test('single files by extension; the file name gives subject and split; split filter on files', async () => {
  const csv = await loadDataset(join(FIXTURE, 'data/test/garden_botany_test.csv'));
  assert.equal(csv.format, 'mmlu-csv');
  assert.deepEqual(csv.files, ['garden_botany_test.csv']);
  assert.deepEqual(
    csv.questions.map((q) => q.id),
    ['garden_botany/test/0', 'garden_botany/test/1', 'garden_botany/test/2'],
  );
  await assert.rejects(loadDataset(join(FIXTURE, 'data/test/garden_botany_test.csv'), { split: 'dev' }), /holds no questions of split "dev" \(it has: test\)/);

  const dir = await tempDir();
  const row = { question: 'Q?', subject: 'garden_botany', choices: ['a', 'b', 'c', 'd'], answer: 1 };
  await writeFile(join(dir, 'mixed.jsonl'), [{ ...row, split: 'dev' }, row].map((r) => JSON.stringify(r)).join('\n'));
  // Row 1 states its split; row 2 does not, and counts as test. The option filters, never relabels.
  const dev = await loadDataset(join(dir, 'mixed.jsonl'), { split: 'dev' });
  assert.deepEqual(
    dev.questions.map((q) => [q.split, q.source.line]),
    [['dev', 1]],
  );
  const tst = await loadDataset(join(dir, 'mixed.jsonl'), { split: 'test' });
  assert.deepEqual(
    tst.questions.map((q) => [q.split, q.source.line]),
    [['test', 2]],
  );
  await assert.rejects(loadDataset(join(dir, 'mixed.jsonl'), { split: 'val' }), /mixed\.jsonl: holds no questions of split "val" \(it has: dev, test\)/);
  await writeFile(join(dir, 'unlabelled.jsonl'), JSON.stringify(row));
  await assert.rejects(loadDataset(join(dir, 'unlabelled.jsonl'), { split: 'dev' }), /holds no questions of split "dev"/);

  await writeFile(join(dir, 'notes.txt'), 'x');
  await assert.rejects(loadDataset(join(dir, 'notes.txt')), /notes\.txt: unknown dataset format/);
  await assert.rejects(loadDataset(dir), /not an MMLU folder/);
  await assert.rejects(loadDataset(join(dir, 'missing.csv')), /missing\.csv: cannot open/);
});

test('fingerprint: same bytes same print wherever they live; a changed byte, a renamed file or a shifted boundary changes it', async () => {
  const dir = await tempDir();
  await cp(FIXTURE, join(dir, 'a'), { recursive: true });
  const base = (await loadDataset(join(dir, 'a'))).fingerprint;
  assert.equal((await loadDataset(FIXTURE)).fingerprint, base, 'independent of where the tree lives');

  const file = join(dir, 'a/data/test/garden_botany_test.csv');
  const bytes = await readFile(file);
  bytes[bytes.indexOf('Leaf')] = 'l'.charCodeAt(0);
  await writeFile(file, bytes);
  assert.notEqual((await loadDataset(join(dir, 'a'))).fingerprint, base);

  const x = new TextEncoder().encode('x');
  const y = new TextEncoder().encode('y');
  assert.equal(
    computeFingerprint([
      { relPath: 'p', bytes: x },
      { relPath: 'q', bytes: y },
    ]),
    computeFingerprint([
      { relPath: 'q', bytes: y },
      { relPath: 'p', bytes: x },
    ]),
  );
  assert.notEqual(computeFingerprint([{ relPath: 'p', bytes: x }]), computeFingerprint([{ relPath: 'r', bytes: x }]));
  // Neither moving a byte between a name and its content, nor from one file's end to the next file's
  // start, may hash alike.
  const enc = (t: string) => new TextEncoder().encode(t);
  assert.notEqual(computeFingerprint([{ relPath: 'p', bytes: enc('qx') }]), computeFingerprint([{ relPath: 'pq', bytes: enc('x') }]));
  const xy = new TextEncoder().encode('xy');
  const empty = new Uint8Array(0);
  assert.notEqual(
    computeFingerprint([
      { relPath: 'p', bytes: xy },
      { relPath: 'q', bytes: empty },
    ]),
    computeFingerprint([
      { relPath: 'p', bytes: x },
      { relPath: 'q', bytes: y },
    ]),
  );
});

test('invalid UTF-8 is a warning with byte offset and line; the rows are still read', async () => {
  const dir = await tempDir();
  const good = new TextEncoder().encode('First?,a,b,c,d,A\nSecond ');
  const bytes = new Uint8Array([...good, 0xff, ...new TextEncoder().encode('?,a,b,c,d,B\n')]);
  await writeFile(join(dir, 'virology_test.csv'), bytes);
  const ds = await loadDataset(join(dir, 'virology_test.csv'));
  assert.equal(ds.questions.length, 2);
  assert.equal(ds.questions[1].question, 'Second \uFFFD?');
  assert.deepEqual(
    ds.warnings?.map((w) => [w.line, w.reason]),
    [[2, `invalid UTF-8 at byte offset ${good.length}; the bad bytes were read as U+FFFD`]],
  );
});

test('a broken categories.json is an issue naming the file and line; the questions still load', async () => {
  const dir = await tempDir();
  await cp(FIXTURE, dir, { recursive: true });
  await writeFile(join(dir, 'categories.json'), '{\n  "subcategories": {\n    "kitchen_science": ["chemistry"]\n  },\n  "categories": {}\n}\n');
  const ds = await loadDataset(dir);
  assert.equal(ds.questions.length, 10);
  assert.equal(ds.categories, undefined);
  assert.deepEqual(
    ds.issues.map((i) => [i.file, i.line]),
    [[join(dir, 'categories.json'), 3]],
  );
  assert.match(ds.issues[0].reason, /subcategory "chemistry" of "kitchen_science" belongs to no category/);
});

function caisParquet(columns: string[]): ArrayBuffer {
  const data: Record<string, DecodedArray> = { question: ['Q?'], subject: ['s'], choices: [['a', 'b', 'c', 'd']], answer: [0n], text: ['t'] };
  const str = (name: string): SchemaElement => ({ name, type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' });
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }];
  for (const c of columns) {
    if (c === 'choices') {
      schema.push(
        { name: 'choices', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        str('element'),
      );
    } else if (c === 'answer') {
      schema.push({ name: 'answer', type: 'INT64', repetition_type: 'OPTIONAL' });
    } else {
      schema.push(str(c));
    }
  }
  return parquetWriteBuffer({ columnData: columns.map((c) => ({ name: c, data: data[c] })), schema });
}

test('discoverDatasets: trees, loose CSVs, cais JSONL and Parquet; skips node_modules, .git, .moe-scope and too-deep folders', async () => {
  const ws = await tempDir();
  await cp(FIXTURE, join(ws, 'mmlu'), { recursive: true });
  await cp(join(FIXTURE, 'data'), join(ws, 'node_modules/pkg/data'), { recursive: true });
  await cp(join(FIXTURE, 'data'), join(ws, '.git/x/data'), { recursive: true });
  await cp(join(FIXTURE, 'data'), join(ws, '.moe-scope/cache/data'), { recursive: true });
  await mkdir(join(ws, 'exports'), { recursive: true });
  await mkdir(join(ws, 'loose'), { recursive: true });
  await mkdir(join(ws, 'a/b/c/d'), { recursive: true });
  const row = JSON.stringify({ question: 'Q?', subject: 's', choices: ['a', 'b', 'c', 'd'], answer: 0 });
  await writeFile(join(ws, 'exports/validation.jsonl'), `${row}\nnot json at all\n`);
  await writeFile(join(ws, 'exports/notes.jsonl'), '{"text": "hello"}\n');
  await writeFile(join(ws, 'exports/test-00000-of-00001.parquet'), new Uint8Array(caisParquet(['question', 'subject', 'choices', 'answer'])));
  await writeFile(join(ws, 'exports/other.parquet'), new Uint8Array(caisParquet(['text'])));
  await writeFile(join(ws, 'exports/broken.parquet'), 'PAR1 nope');
  await writeFile(join(ws, 'loose/astronomy_test.csv'), 'Q?,a,b,c,d,A\n');
  await writeFile(join(ws, 'loose/results.csv'), 'x,y\n');
  await writeFile(join(ws, 'a/b/c/d/virology_dev.csv'), 'Q?,a,b,c,d,A\n');

  const found = await discoverDatasets(ws, { maxDepth: 3 });
  const rel = (p: string) => p.slice(ws.length + 1);
  assert.deepEqual(
    found.map((f) => [rel(f.path), f.format, f.splits]),
    [
      ['exports/test-00000-of-00001.parquet', 'parquet', ['test']],
      ['exports/validation.jsonl', 'jsonl', ['val']],
      ['loose/astronomy_test.csv', 'mmlu-csv', ['test']],
      ['mmlu', 'mmlu-tree', ['dev', 'val', 'test']],
    ],
  );
  assert.equal(found.find((f) => f.format === 'mmlu-tree')!.label, 'MMLU tree: 2 subjects, dev/val/test');

  const deeper = await discoverDatasets(ws, { maxDepth: 4 });
  assert.ok(deeper.some((f) => rel(f.path) === 'a/b/c/d/virology_dev.csv'));
});
