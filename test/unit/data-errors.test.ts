/** --data mistakes a new user makes (issue 24, items 2 and 14): an archive folder, a bad subject reported before any model loads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadDataset } from '../../src/mmlu/load';
import { runEvaluation } from '../../src/eval/runner';
import type { InferenceBackend } from '../../src/shared/protocol';
import { REPO_ROOT } from '../support/models';

test('a folder that holds only the MMLU archive: the error names the archive and how to unpack it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-archive-'));
  try {
    fs.writeFileSync(path.join(dir, 'mmlu.tar.xz'), 'not really');
    await assert.rejects(loadDataset(dir), (e: Error) => {
      assert.match(e.message, /not an MMLU folder/);
      assert.match(e.message, /holds the archive mmlu\.tar\.xz/);
      assert.match(e.message, /tar -xf .*mmlu\.tar\.xz/);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // The repository's own data/mmlu: the message points at scripts/unpack-mmlu.sh and .data/mmlu.
  const repoData = path.join(REPO_ROOT, 'data', 'mmlu');
  assert.ok(fs.existsSync(path.join(repoData, 'mmlu.tar.xz')), `${repoData}/mmlu.tar.xz is in the repository`);
  await assert.rejects(loadDataset(repoData), /bash scripts\/unpack-mmlu\.sh.*--data \.data\/mmlu/);
});

test('eval: an unknown subject is reported before the model is loaded', async () => {
  const calls: string[] = [];
  const backend: InferenceBackend = {
    call: async (method) => {
      calls.push(method);
      throw new Error(`the test backend was asked to ${method}`);
    },
  };
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-run-'));
  try {
    await assert.rejects(
      runEvaluation(backend, {
        modelPath: '/nonexistent/model',
        load: { executionProvider: 'cpu' },
        dataPath: path.join(REPO_ROOT, 'test', 'fixtures', 'mmlu', 'tree'),
        split: 'test',
        shots: 0,
        subjects: ['no_such_subject'],
        tokenScope: 'answer',
        batchSize: 1,
        runDir,
      }),
      /unknown subject\(s\) no_such_subject/,
    );
    assert.deepEqual(calls, [], 'no engine call before the data is checked');
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
});
