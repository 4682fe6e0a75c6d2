/**
 * "MoE: Check inference environment" (src/host/environmentCheck.ts) driven with a fake window: the
 * "checking ..." progress notification is closed before the result notification appears (issue 24,
 * item 5: it stayed open after the result), and a failed check shows its error with no result.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkEnvironment, type EnvironmentCheckDeps } from '../../src/host/environmentCheck';

interface Events {
  log: string[];
  openProgress: Set<string>;
}

function fakeDeps(events: Events, overrides: Partial<EnvironmentCheckDeps> = {}): EnvironmentCheckDeps {
  return {
    resolvePython: () => Promise.resolve({ python: '/venv/bin/python', source: 'the workspace .venv' }),
    environmentReport: () => new Promise((resolve) => setTimeout(() => resolve({ python: 'ok' }), 5)),
    reprobe: () => events.log.push('reprobe'),
    engineChoice: () => Promise.resolve('PyTorch (torch found)'),
    configuredEngine: () => 'auto',
    formatEnvironment: () => 'Python 3.12 with torch 2.13\nONNX Runtime cpu',
    withProgress: async (title, task) => {
      events.openProgress.add(title);
      events.log.push(`progress open: ${title}`);
      try {
        return await task();
      } finally {
        events.openProgress.delete(title);
        events.log.push(`progress closed: ${title}`);
      }
    },
    showError: (message) => events.log.push(`error: ${message}`),
    showResult: (summary) => {
      events.log.push(`result shown while open: [${[...events.openProgress].join(', ')}]: ${summary}`);
      return Promise.resolve(true);
    },
    log: () => events.log.push('logged'),
    showLog: () => events.log.push('log shown'),
    ...overrides,
  };
}

test('the "checking ..." notification is closed before the result is shown', async () => {
  const events: Events = { log: [], openProgress: new Set() };
  const result = await checkEnvironment(fakeDeps(events));
  assert.ok(result);
  assert.equal(result.summary, 'MoE Scope: engine PyTorch. Python 3.12 with torch 2.13');
  assert.match(result.details, /Python chosen from: the workspace \.venv\nmoeScope\.engine = auto: PyTorch \(torch found\)$/);
  assert.deepEqual(events.log, [
    'progress open: MoE Scope: checking /venv/bin/python...',
    'reprobe',
    'progress closed: MoE Scope: checking /venv/bin/python...',
    'logged',
    'result shown while open: []: MoE Scope: engine PyTorch. Python 3.12 with torch 2.13',
    'log shown',
  ]);
});

test('the result notification waiting for the user does not keep the progress notification open', async () => {
  const events: Events = { log: [], openProgress: new Set() };
  let answer: (picked: boolean) => void = () => undefined;
  const check = checkEnvironment(fakeDeps(events, { showResult: () => new Promise<boolean>((resolve) => (answer = resolve)) }));
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(events.openProgress.size, 0, `still open while the result waits for the user: ${[...events.openProgress].join(', ')}`);
  answer(false);
  await check;
  assert.ok(!events.log.includes('log shown'), 'the log is shown only when the details are asked for');
});

test('a failed check shows its error, closes the progress notification and shows no result', async () => {
  const events: Events = { log: [], openProgress: new Set() };
  const result = await checkEnvironment(fakeDeps(events, { environmentReport: () => Promise.reject(new Error('python exited 1')) }));
  assert.equal(result, null);
  assert.deepEqual(events.log, [
    'progress open: MoE Scope: checking /venv/bin/python...',
    'error: MoE Scope: the environment check failed: python exited 1',
    'progress closed: MoE Scope: checking /venv/bin/python...',
  ]);
});

test('an engine choice that fails is reported as the reason, not as a failed check', async () => {
  const events: Events = { log: [], openProgress: new Set() };
  const result = await checkEnvironment(fakeDeps(events, { engineChoice: () => Promise.reject(new Error('no engine: torch is missing')) }));
  assert.ok(result);
  assert.match(result.details, /moeScope\.engine = auto: no engine: torch is missing$/);
});
