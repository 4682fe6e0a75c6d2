/**
 * The null engine (test/support/nullEngine.ts) as an inference process: the same entry protocol as
 * src/engines/onnxruntime/process.ts (node IPC, 'advanced' serialisation, one request at a time), so a
 * benchmark can time the engine process protocol without a model.
 */
import { NullEngine } from '../test/support/nullEngine';
import { EngineFailure, type EngineRequest, type EngineToHost, type HostToEngine } from '../src/shared/protocol';

const send = (m: EngineToHost) => process.send?.(m);
const engine = new NullEngine();
const controllers = new Map<number, AbortController>();
let queue: Promise<void> = Promise.resolve();

process.on('message', (raw: unknown) => {
  const msg = raw as HostToEngine;
  if (msg?.type === 'cancel') {
    controllers.get(msg.id)?.abort();
    return;
  }
  if (msg?.type !== 'request') return;
  const controller = new AbortController();
  controllers.set(msg.id, controller);
  queue = queue.then(() => handle(msg, controller.signal));
});

async function handle(req: EngineRequest, signal: AbortSignal): Promise<void> {
  try {
    const result = await engine.call(req.method, req.params, signal);
    send({ type: 'response', id: req.id, ok: true, result });
    if (req.method === 'shutdown') setImmediate(() => process.exit(0));
  } catch (e) {
    const err = e instanceof EngineFailure ? { code: e.code, message: e.message } : { code: 'internal' as const, message: (e as Error)?.stack ?? String(e) };
    send({ type: 'response', id: req.id, ok: false, error: err });
  } finally {
    controllers.delete(req.id);
  }
}

process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
