/**
 * EngineClient owns its process's lifecycle: which model it has loaded or is loading, and what a crash,
 * a restart or a failed load does to that. A scripted channel stands in for the process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineClient, type ChannelEvents, type ChannelFactory } from '../../src/engines/client/engineClient';
import { EngineFailure, type HostToEngine, type LoadOptions, type ModelInfo } from '../../src/shared/protocol';

interface Script {
  /** Every request the channels received, as "method modelPath?". */
  requests: string[];
  /** Channels started so far; the last one is the live one. */
  events: ChannelEvents[];
  /** Requests not answered yet, by id. */
  held: Map<number, { method: string; params: unknown }>;
  answer(id: number, outcome: 'ok' | 'fail'): void;
}

/** A channel that records requests and answers each when the test says so. */
function scripted(): { factory: ChannelFactory; script: Script } {
  const script: Script = {
    requests: [],
    events: [],
    held: new Map(),
    answer(id, outcome) {
      const r = this.held.get(id)!;
      this.held.delete(id);
      const model = { path: (r.params as { modelPath?: string }).modelPath } as ModelInfo;
      const events = this.events[this.events.length - 1];
      if (outcome === 'ok') events.onMessage({ type: 'response', id, ok: true, result: r.method === 'load' ? model : { ok: true } });
      else events.onMessage({ type: 'response', id, ok: false, error: { code: 'bad-model', message: 'no config.json' } });
    },
  };
  const factory: ChannelFactory = (events) => {
    script.events.push(events);
    return {
      pid: script.events.length,
      send(m: HostToEngine) {
        if (m.type !== 'request') return;
        const p = m.params as { modelPath?: string };
        script.requests.push(`${m.method}${p.modelPath ? ` ${p.modelPath}` : ''}`);
        script.held.set(m.id, { method: m.method, params: m.params });
      },
      kill() {
        events.onExit('was killed by SIGKILL');
      },
    };
  };
  return { factory, script };
}

const cpu: LoadOptions = { executionProvider: 'cpu' };
/** Read through a function: an assertion on client.model must not narrow later reads. */
const loadedPath = (c: EngineClient) => c.model?.path;
const tick = () => new Promise((r) => setImmediate(r));
const lastId = (s: Script) => Math.max(...s.held.keys());

test('the client knows the model its process loaded, and shares a load in flight with a second caller', async () => {
  const { factory, script } = scripted();
  const client = new EngineClient({ channel: factory });
  assert.equal(client.currentLoad('/m', cpu), null);
  const first = client.load('/m', cpu);
  assert.equal(client.model, null, 'no model while the load is in flight');
  assert.equal(client.currentLoad('/m', cpu), first, 'the same load in flight is shared');
  assert.equal(client.currentLoad('/m', { executionProvider: 'cuda' }), null, 'other options are another load');
  assert.equal(client.currentLoad('/other', cpu), null, 'another folder is another load');
  script.answer(lastId(script), 'ok');
  const info = await first;
  assert.equal(client.model, info);
  assert.equal(loadedPath(client), '/m');
  assert.equal(client.currentLoad('/m', cpu), first);
  assert.deepEqual(script.requests, ['load /m']);
  await client.dispose();
});

/** A client whose process has loaded `modelPath`. */
async function loadedClient(modelPath: string): Promise<{ client: EngineClient; script: Script }> {
  const { factory, script } = scripted();
  const client = new EngineClient({ channel: factory });
  const loaded = client.load(modelPath, cpu);
  script.answer(lastId(script), 'ok');
  await loaded;
  return { client, script };
}

test('a process that dies takes its model with it; the next request starts a fresh one and loads the model again', async () => {
  const { client, script } = await loadedClient('/m');
  script.events[0].onExit('exited with code 1');
  assert.equal(client.model, null);
  assert.equal(client.currentLoad('/m', cpu), null);
  const call = client.call('tokenize', { texts: ['x'] });
  await tick();
  assert.equal(script.events.length, 2, 'a second process was started');
  script.answer(lastId(script), 'ok'); // the reload
  await tick();
  assert.equal(loadedPath(client), '/m', 'the reloaded model is known again');
  script.answer(lastId(script), 'ok'); // the tokenize
  await call;
  assert.deepEqual(script.requests, ['load /m', 'load /m', 'tokenize']);
  await client.dispose();
});

test('a failed load leaves no model and no load to share; a restart forgets the model but not what to reload', async () => {
  const { factory, script } = scripted();
  const client = new EngineClient({ channel: factory });
  const bad = client.load('/bad', cpu);
  script.answer(lastId(script), 'fail');
  await assert.rejects(bad, (e: unknown) => e instanceof EngineFailure && e.code === 'bad-model');
  assert.equal(client.model, null);
  assert.equal(client.currentLoad('/bad', cpu), null);

  const good = client.load('/m', cpu);
  script.answer(lastId(script), 'ok');
  await good;
  client.restart();
  assert.equal(client.model, null);
  assert.equal(client.currentLoad('/m', cpu), null);
  const call = client.call('tokenize', { texts: ['x'] });
  await tick();
  assert.deepEqual(script.requests.slice(-1), ['load /m']);
  script.answer(lastId(script), 'ok');
  await tick();
  script.answer(lastId(script), 'ok');
  await call;
  await client.dispose();
});

test('an earlier load that finishes after a later one does not become the model', async () => {
  const { factory, script } = scripted();
  const client = new EngineClient({ channel: factory });
  const first = client.load('/a', cpu);
  const firstId = lastId(script);
  const second = client.load('/b', cpu);
  const secondId = lastId(script);
  script.answer(secondId, 'ok');
  await second;
  script.answer(firstId, 'ok');
  await first;
  assert.equal(loadedPath(client), '/b');
  assert.equal(client.currentLoad('/a', cpu), null);
  assert.equal(client.currentLoad('/b', cpu), second);
  await client.dispose();
});
