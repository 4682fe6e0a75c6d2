/** Both inference processes behind the same EngineClient, for suites that must hold for each engine. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EngineClient, type EngineClientOptions } from '../../src/engines/client/engineClient';
import { pythonChannel } from '../../src/engines/client/pythonWorker';
import { ENGINE_KINDS as ALL_ENGINE_KINDS, type EngineKind } from '../../src/shared/protocol';
import { REPO_ROOT } from './models';
import { testPython } from './python';

export const ENGINE_KINDS: EngineKind[] = [...ALL_ENGINE_KINDS];

export function engineClient(kind: EngineKind, options: Omit<EngineClientOptions, 'entry' | 'channel'> = {}): EngineClient {
  if (kind === 'pytorch') {
    process.env.MOE_SCOPE_WORKER_DIR ??= path.join(REPO_ROOT, 'python');
    return new EngineClient({ ...options, channel: pythonChannel(testPython()) });
  }
  const entry = path.join(REPO_ROOT, 'dist', 'inference-process.js');
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: run node esbuild.mjs first`);
  return new EngineClient({ ...options, entry });
}
