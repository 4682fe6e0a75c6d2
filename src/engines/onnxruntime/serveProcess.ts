/**
 * The inference process's side of node's IPC channel (forked with the 'advanced' serialisation, so typed
 * arrays cross without copying into JSON). Requests run one at a time, in arrival order; a cancel message
 * aborts the matching request, queued or running. Shared by the engine's process and the benchmarks' null
 * engine, so both speak exactly the same protocol.
 */
import { EngineFailure, type EngineRequest, type EngineToHost, type HostToEngine, type InferenceBackend, type TokenizeResult } from '../../shared/protocol';
import { packTokenizeResults } from '../../shared/tokenizeWire';

export const sendToHost = (m: EngineToHost) => process.send?.(m);

export function serveEngineProcess(engine: InferenceBackend): void {
  const controllers = new Map<number, AbortController>();
  let queue: Promise<void> = Promise.resolve();

  const handle = async (req: EngineRequest, signal: AbortSignal): Promise<void> => {
    try {
      if (signal.aborted) throw new EngineFailure('cancelled', 'the request was cancelled');
      const out = await engine.call(req.method, req.params, signal);
      const result = req.method === 'tokenize' ? packTokenizeResults(req.params.texts, out as TokenizeResult[]) : out;
      sendToHost({ type: 'response', id: req.id, ok: true, result });
      if (req.method === 'shutdown') setImmediate(() => process.exit(0));
    } catch (e) {
      const err = e instanceof EngineFailure ? { code: e.code, message: e.message } : { code: 'internal' as const, message: (e as Error)?.stack ?? String(e) };
      sendToHost({ type: 'response', id: req.id, ok: false, error: err });
    } finally {
      controllers.delete(req.id);
    }
  };

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

  // The host going away (editor closed, extension host crashed) must not leave a process holding gigabytes.
  process.on('disconnect', () => process.exit(0));
  sendToHost({ type: 'ready', pid: process.pid });
}
