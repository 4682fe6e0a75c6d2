/** The inference process as the editor uses it: over IPC, surviving a kill. Needs `node esbuild.mjs` first. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient } from '../../src/host/engineClient';
import { EngineFailure } from '../../src/shared/protocol';
import { makeModel, tempDir, REPO_ROOT, SAMPLE_QUESTION } from '../support/models';

const entry = path.join(REPO_ROOT, 'dist', 'inference-process.js');

test('killing the inference process mid-request rejects that request clearly, and the next request succeeds', async () => {
  assert.ok(fs.existsSync(entry), `${entry} is missing: run node esbuild.mjs first`);
  const dir = makeModel({ family: 'olmoe' });
  const exits: string[] = [];
  const client = new EngineClient({ entry, onExit: (how) => exits.push(how) });
  try {
    const info = await client.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    assert.equal(info.numLayers, 16);
    const firstPid = client.pid!;
    const long = Array.from({ length: 12 }, () => SAMPLE_QUESTION).join('\n\n');
    const pending = client.call('trace', { input: { text: long }, options: { includeProbs: true, includeLastLogits: false } });
    setTimeout(() => process.kill(firstPid, 'SIGKILL'), 50);
    await assert.rejects(pending, (e: unknown) => {
      assert.ok(e instanceof EngineFailure);
      assert.equal(e.code, 'process-died');
      assert.match(e.message, /The inference process was killed by SIGKILL/);
      assert.match(e.message, /next request starts a fresh process/);
      return true;
    });
    assert.deepEqual(exits, ['was killed by SIGKILL']);
    // The next request starts a new process, reloads the model and answers.
    const r = await client.call('trace', { input: { text: SAMPLE_QUESTION }, options: { includeProbs: false, includeLastLogits: false } });
    assert.notEqual(client.pid, firstPid);
    assert.equal(r.routing.numLayers, 16);
    assert.ok(r.tokens.length > 20);
    assert.ok(r.routing.topExperts instanceof Uint16Array, 'typed arrays survive the IPC channel');
  } finally {
    await client.dispose();
  }
});

test('a cancelled request rejects with "cancelled" and the process keeps serving', async () => {
  const dir = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
  const client = new EngineClient({ entry });
  try {
    await client.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    const ac = new AbortController();
    const pending = client.call('trace', { input: { text: SAMPLE_QUESTION }, options: { includeProbs: false, includeLastLogits: false } }, ac.signal);
    ac.abort();
    await assert.rejects(pending, /cancelled/);
    const r = await client.call('tokenize', { texts: ['Answer: A'] });
    assert.ok(r[0].ids.length > 0);
  } finally {
    await client.dispose();
  }
});

test('errors from the engine keep their code across the process boundary', async () => {
  const client = new EngineClient({ entry });
  try {
    await assert.rejects(client.load(tempDir('empty'), { executionProvider: 'cpu' }), (e: unknown) => e instanceof EngineFailure && e.code === 'bad-model' && /no config\.json/.test(e.message));
    await assert.rejects(client.call('trace', { input: { text: 'x' }, options: { includeProbs: false, includeLastLogits: false } }), (e: unknown) => e instanceof EngineFailure && e.code === 'not-loaded');
  } finally {
    await client.dispose();
  }
});
