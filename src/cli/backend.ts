/** The command line's engine choice: --engine onnxruntime|pytorch|auto and --python PATH (env MOE_SCOPE_PYTHON). */
import { Engine } from '../engines/onnxruntime/engine';
import { onnxEngineRefusal } from '../engines/onnxruntime/support';
import { EngineClient } from '../engines/client/engineClient';
import { checkPython, chooseEngine, defaultPython, pythonChannel } from '../engines/client/pythonWorker';
import type { EngineKind, InferenceBackend } from '../shared/protocol';
import { engineSettingOption } from './command';

export interface CliBackend extends InferenceBackend {
  kind: EngineKind;
  dispose(): Promise<void>;
}

export const ENGINE_OPTIONS = { engine: { type: 'string' }, python: { type: 'string' }, verbose: { type: 'boolean', default: false } } as const;

/** The engine's log on stderr: warnings and errors always, its info lines (probe diagnostics among them) with --verbose. */
export function engineLog(ctx: { err: (s: string) => void }, verbose: boolean | undefined): (level: 'info' | 'warn' | 'error', m: string) => void {
  return (level, m) => {
    if (level !== 'info' || verbose) ctx.err(m);
  };
}

export async function openBackend(
  engineOption: string | undefined,
  pythonOption: string | undefined,
  log: (level: 'info' | 'warn' | 'error', m: string) => void,
  /** The checkpoint to be loaded: with --engine auto, one the ONNX Runtime engine refuses goes to PyTorch. */
  modelPath?: string,
): Promise<CliBackend> {
  const setting = engineSettingOption(engineOption ?? 'onnxruntime');
  const python = defaultPython(pythonOption);
  let kind: EngineKind | 'auto' = setting;
  if (kind === 'auto') {
    const choice = chooseEngine(await checkPython(python), modelPath ? await onnxEngineRefusal(modelPath) : null);
    log('info', `engine auto: ${choice.engine} (${choice.why})`);
    kind = choice.engine;
  }
  if (kind === 'onnxruntime') {
    const engine = new Engine(log);
    return Object.assign(engine, { kind: 'onnxruntime' as const });
  }
  const client = new EngineClient({ channel: pythonChannel(python), onLog: log });
  return {
    kind: 'pytorch',
    call: (method, params, signal) => client.call(method, params, signal),
    async dispose() {
      await client.call('shutdown', {}).catch(() => {});
      await client.dispose();
    },
  };
}
