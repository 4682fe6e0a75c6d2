/**
 * Entry point of the inference process (forked by the extension host with node's IPC channel and the
 * 'advanced' serialisation, so typed arrays cross without copying into JSON). Requests run one at a
 * time, in arrival order; a cancel message aborts the matching request, queued or running.
 */
import { Engine } from './engine';
import { EngineFailure, type EngineRequest, type EngineToHost, type HostToEngine } from '../../shared/protocol';

const send = (m: EngineToHost) => process.send?.(m);
const engine = new Engine((level, message) => send({ type: 'log', level, message }));
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
    if (signal.aborted) throw new EngineFailure('cancelled', 'the request was cancelled');
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

// The host going away (editor closed, extension host crashed) must not leave a process holding gigabytes.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
