/**
 * The PyTorch worker's start: a Python that prints before the worker (a conda-style wrapper), floods stdout,
 * hangs, or sends an impossible frame length is refused in bounded time with a message showing what it
 * printed, and the process is gone afterwards (no hang, no orphan). Fake interpreters are shell scripts,
 * so no Python is needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient } from '../../src/engines/client/engineClient';
import { checkPython, pythonChannel } from '../../src/engines/client/pythonWorker';
import { FrameReader, WORKER_HELLO, encodeFrame } from '../../src/engines/client/frames';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-handshake-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));

function fakePython(name: string, body: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z');
  } catch {
    return false;
  }
};

async function loadWith(python: string, env: NodeJS.ProcessEnv = {}): Promise<{ error: Error; ms: number; pid: number }> {
  const client = new EngineClient({ channel: pythonChannel(python), env });
  const t0 = Date.now();
  const p = client.load('/nonexistent-model', { batchSize: 1 } as never);
  const pid = client.pid!;
  const error = await p.then(
    () => new Error('loaded'),
    (e: Error) => e,
  );
  await client.dispose();
  return { error, ms: Date.now() - t0, pid };
}

test('a wrapper that prints before exec is refused at once, showing what it printed, and is reaped', async () => {
  const py = fakePython('wrapper', 'echo "activating env"\nexec sleep 300');
  const { error, ms, pid } = await loadWith(py);
  assert.match(error.message, /printed something else on stdout before the worker started/);
  assert.match(error.message, /activating env/);
  assert.ok(ms < 10_000, `took ${ms} ms`);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(alive(pid), false, `worker ${pid} still running`);
});

test('a stdout flood is refused after its first bytes, not buffered', async () => {
  const py = fakePython('flood', 'exec cat /dev/zero');
  const before = process.memoryUsage().rss;
  const { error, ms } = await loadWith(py);
  assert.match(error.message, /did not start/);
  assert.ok(ms < 10_000, `took ${ms} ms`);
  assert.ok(process.memoryUsage().rss - before < 512 << 20, 'memory grew by more than 512 MiB');
});

test('a Python that never says hello is stopped after the start timeout', async () => {
  const py = fakePython('silent', 'exec sleep 300');
  const { error, ms, pid } = await loadWith(py, { MOE_SCOPE_WORKER_START_TIMEOUT_S: '1' });
  assert.match(error.message, /wrote no MoE Scope worker hello within 1 s/);
  assert.ok(ms >= 900 && ms < 10_000, `took ${ms} ms`);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(alive(pid), false);
});

test('a worker that says hello but never gets ready is stopped after the ready timeout', async () => {
  const py = fakePython('stuck', `printf '\\000MOE-SCOPE-WORKER/1\\n'\nexec sleep 300`);
  const { error, ms } = await loadWith(py, { MOE_SCOPE_WORKER_READY_TIMEOUT_S: '1' });
  assert.match(error.message, /did not get ready/);
  assert.ok(ms < 10_000, `took ${ms} ms`);
});

test('frame reader: an impossible frame length is refused before it is buffered', () => {
  const r = new FrameReader(() => {}, { hello: WORKER_HELLO, maxFrameBytes: 1 << 20 });
  const head = Buffer.alloc(4);
  head.writeUInt32LE(0x69746361); // "acti" as a length: 1.8 GB
  assert.throws(() => r.push(Buffer.concat([WORKER_HELLO, head])), /exceeds the 1048576-byte frame limit/);
  const plain = new FrameReader(() => {});
  assert.throws(() => plain.push(Buffer.from('acti\0\0\0\0')), /exceeds/);
});

test('frame reader: the hello may arrive split, and frames after it decode', () => {
  const got: unknown[] = [];
  const r = new FrameReader((m) => got.push(m), { hello: WORKER_HELLO });
  const all = Buffer.concat([WORKER_HELLO, encodeFrame({ type: 'ready', pid: 1 })]);
  for (let i = 0; i < all.length; i++) r.push(all.subarray(i, i + 1));
  assert.deepEqual(got, [{ type: 'ready', pid: 1 }]);
});

test('the environment check of a hanging Python ends at its timeout and leaves no process behind (a wrapper with children too)', async () => {
  const py = fakePython('hanging-env', 'sleep 3132 &\nsleep 3132\n');
  const t0 = Date.now();
  const env = await checkPython(py, 1000);
  assert.equal(env.usable, false);
  assert.match(env.problems[0], /did not answer within 1 s; stopped it/);
  assert.ok(Date.now() - t0 < 10_000);
  await new Promise((r) => setTimeout(r, 300));
  const left = fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .filter((e) => {
      try {
        return fs.readFileSync(`/proc/${e}/cmdline`, 'utf8') === 'sleep\u00003132\u0000';
      } catch {
        return false;
      }
    });
  assert.deepEqual(left, [], 'processes the check started are still running');
});
