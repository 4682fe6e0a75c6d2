import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { dispatchEngineMethod, EngineFailure, type EngineHandlers, type EngineMethod } from '../../src/shared/protocol';

const failure = (code: string) => (e: unknown) => e instanceof EngineFailure && e.code === code;

test('the method table runs the named handler with its params and signal', async () => {
  const seen: string[] = [];
  const signal = new AbortController().signal;
  const handlers: EngineHandlers = {
    load: () => Promise.reject(new Error('not this one')),
    tokenize: (p, s) => {
      seen.push(`tokenize ${p.texts.join('|')} ${s === signal}`);
      return p.texts.map((t) => ({ ids: [t.length], tokens: [] }));
    },
    trace: () => Promise.reject(new Error('not this one')),
    score: () => Promise.reject(new Error('not this one')),
    analyzeWeights: () => Promise.reject(new Error('not this one')),
    shutdown: () => ({ ok: true }),
  };
  const r = await dispatchEngineMethod(handlers, 'tokenize', { texts: ['ab', 'cde'] }, signal);
  assert.deepEqual(
    r.map((x) => x.ids),
    [[2], [3]],
  );
  assert.deepEqual(seen, ['tokenize ab|cde true']);
  assert.deepEqual(await dispatchEngineMethod(handlers, 'shutdown', {}), { ok: true });
});

test('a method name that is not in the table is a bad-input failure, also for inherited names', async () => {
  const engine = new Engine();
  await assert.rejects(engine.call('frobnicate' as EngineMethod, {} as never), failure('bad-input'));
  await assert.rejects(engine.call('toString' as EngineMethod, {} as never), failure('bad-input'));
});

test('the engine answers methods that need a model with not-loaded before a load', async () => {
  const engine = new Engine();
  await assert.rejects(engine.call('tokenize', { texts: ['x'] }), failure('not-loaded'));
  await assert.rejects(engine.call('analyzeWeights', {}), failure('not-loaded'));
  assert.deepEqual(await engine.call('shutdown', {}), { ok: true });
});
