/**
 * The protocol conformance suite: every inference process (the ONNX Runtime Node process and the PyTorch
 * worker) as the editor uses it, over its channel: trace, score, cancel, surviving kill -9, bad input.
 * Needs `node esbuild.mjs` first (ONNX Runtime) and the .venv of scripts/setup-python.sh (PyTorch).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineFailure, type EngineKind, type Routing } from '../../src/shared/protocol';
import { makeModel, tempDir, SAMPLE_QUESTION } from '../support/models';
import { ENGINE_KINDS, engineClient } from '../support/engines';

const noProbs = { includeProbs: false, includeLastLogits: false };

function routingAt(r: Routing, t: number): { experts: number[]; weights: number[]; entropy: number[] } {
  const K = r.topK;
  const out = { experts: [] as number[], weights: [] as number[], entropy: [] as number[] };
  for (let l = 0; l < r.numLayers; l++) {
    out.experts.push(...r.topExperts.subarray((l * r.numTokens + t) * K, (l * r.numTokens + t + 1) * K));
    out.weights.push(...r.topWeights.subarray((l * r.numTokens + t) * K, (l * r.numTokens + t + 1) * K));
    out.entropy.push(r.entropy[l * r.numTokens + t]);
  }
  return out;
}

function close(a: number[], b: number[], tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

for (const kind of ENGINE_KINDS) {
  const load = (client: ReturnType<typeof engineClient>, dir: string) => client.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });

  test(`[${kind}] killing the inference process mid-request rejects that request clearly, and the next request succeeds`, async () => {
    const dir = makeModel({ family: 'olmoe' });
    const exits: string[] = [];
    const client = engineClient(kind, { onExit: (how) => exits.push(how) });
    try {
      const info = await load(client, dir);
      assert.equal(info.numLayers, 16);
      assert.equal(info.engine, kind);
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
      const r = await client.call('trace', { input: { text: SAMPLE_QUESTION }, options: noProbs });
      assert.notEqual(client.pid, firstPid);
      assert.equal(r.routing.numLayers, 16);
      assert.ok(r.tokens.length > 20);
      assert.ok(r.routing.topExperts instanceof Uint16Array, 'typed arrays survive the channel');
      assert.ok(r.routing.topWeights instanceof Float32Array);
    } finally {
      await client.dispose();
    }
  });

  test(`[${kind}] a cancelled request rejects with "cancelled" and the process keeps serving`, async () => {
    const dir = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
    const client = engineClient(kind);
    try {
      await load(client, dir);
      const ac = new AbortController();
      const pending = client.call('trace', { input: { text: SAMPLE_QUESTION }, options: noProbs }, ac.signal);
      ac.abort();
      await assert.rejects(pending, /cancelled/);
      const r = await client.call('tokenize', { texts: ['Answer: A'] });
      assert.ok(r[0].ids.length > 0);
    } finally {
      await client.dispose();
    }
  });

  test(`[${kind}] errors keep their code across the process boundary; bad input is named`, async () => {
    const client = engineClient(kind);
    try {
      await assert.rejects(
        load(client, tempDir('empty')),
        (e: unknown) => e instanceof EngineFailure && e.code === 'bad-model' && /config\.json/.test(e.message),
      );
      await assert.rejects(
        client.call('trace', { input: { text: 'x' }, options: noProbs }),
        (e: unknown) => e instanceof EngineFailure && e.code === 'not-loaded',
      );
      const dir = makeModel({ family: 'olmoe', overrides: { layers: 2 } });
      const info = await load(client, dir);
      const badId = info.vocabSize + 5;
      await assert.rejects(
        client.call('trace', { input: { ids: [1, badId] }, options: noProbs }),
        (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input' && e.message.includes(String(badId)),
      );
      await assert.rejects(
        client.call('score', { prefix: null, items: [{ key: 'q1', ids: [] }] }),
        (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input' && /q1/.test(e.message),
      );
      await assert.rejects(
        client.call('score', { prefix: null, items: [{ key: 'q', ids: [5] }], routingPositions: 'some' as never }),
        (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input' && /routingPositions/.test(e.message),
      );
      await assert.rejects(
        client.call('trace', { input: { text: '' }, options: noProbs }),
        (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input',
      );
      // The process still serves after bad input.
      assert.equal((await client.call('tokenize', { texts: ['Answer:'] }))[0].tokens.at(-1)!.text, ':');
    } finally {
      await client.dispose();
    }
  });

  test(`[${kind}] score: the prefix cache changes nothing; routingPositions returns the asked-for slice of the full routing`, async () => {
    const dir = makeModel({ family: 'olmoe', overrides: { layers: 3 } });
    const client = engineClient(kind);
    try {
      await load(client, dir);
      const [a, b, c] = await client.call('tokenize', {
        texts: [SAMPLE_QUESTION, SAMPLE_QUESTION.replace('biology', 'chemistry'), SAMPLE_QUESTION.replace('NOT ', '')],
      });
      const P = 12;
      const prefix = { key: 'p', ids: a.ids.slice(0, P) };
      const items = [a, b, c].map((e, i) => ({ key: `q${i}`, ids: e.ids.slice(P) }));
      for (const [i, e] of [a, b, c].entries()) assert.deepEqual(e.ids.slice(0, P), prefix.ids, `prompt ${i} shares the prefix`);
      const whole = await client.call('score', { prefix: null, items: [a, b, c].map((e, i) => ({ key: `q${i}`, ids: e.ids })) });
      const all = await client.call('score', { prefix, items });
      assert.equal(all.prefixReused, false);
      const last = await client.call('score', { prefix, items, routingPositions: 'last' });
      assert.equal(last.prefixReused, true);
      const item = await client.call('score', { prefix, items, routingPositions: 'item' });
      for (let i = 0; i < 3; i++) {
        const n = [a, b, c][i].ids.length;
        const w = whole.items[i];
        assert.equal(w.promptTokens, n);
        assert.equal(all.items[i].routing.numTokens, n);
        assert.equal(all.items[i].routingStart, 0);
        close(all.items[i].answerLogProbs, w.answerLogProbs, 1e-4, `q${i} log-probs with vs without the prefix cache`);
        assert.deepEqual(routingAt(all.items[i].routing, n - 1).experts, routingAt(w.routing, n - 1).experts);
        assert.equal(last.items[i].routing.numTokens, 1);
        assert.equal(last.items[i].routingStart, n - 1);
        assert.equal(last.items[i].promptTokens, n);
        const l = routingAt(last.items[i].routing, 0);
        const f = routingAt(all.items[i].routing, n - 1);
        assert.deepEqual(l.experts, f.experts);
        close(l.weights, f.weights, 1e-6, `q${i} last-position weights`);
        close(l.entropy, f.entropy, 1e-6, `q${i} last-position entropy`);
        assert.equal(item.items[i].routing.numTokens, n - P);
        assert.equal(item.items[i].routingStart, P);
        assert.deepEqual(routingAt(item.items[i].routing, 2).experts, routingAt(all.items[i].routing, P + 2).experts);
      }
    } finally {
      await client.dispose();
    }
  });
}

test('the engines are the ones under test', () => {
  assert.deepEqual([...ENGINE_KINDS].sort(), (['onnxruntime', 'pytorch'] satisfies EngineKind[]).sort());
});
