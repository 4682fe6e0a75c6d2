/**
 * Whether the ONNX Runtime engine builds a checkpoint, from its config.json alone (no weights read): what
 * `auto` engine selection asks before it starts an engine, so that a family or config field this engine
 * refuses goes to the PyTorch engine. Malformed configs are not "unsupported": they are left for the
 * engine's load to report with file, field and problem.
 */
import * as path from 'node:path';
import { familyFor, UnsupportedByEngineError, type HfConfig } from './families';
import { readRegularFileAsync } from '../../shared/safeFiles';

/** The ONNX Runtime engine's refusal of the checkpoint in `modelDir`, or null when it builds it (or cannot tell). */
export async function onnxEngineRefusal(modelDir: string): Promise<string | null> {
  const file = path.join(path.resolve(modelDir), 'config.json');
  let config: unknown;
  try {
    config = JSON.parse((await readRegularFileAsync(file, { maxBytes: 16 << 20 })).toString('utf8'));
  } catch {
    return null;
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) return null;
  try {
    familyFor(config as HfConfig, file).architecture(config as HfConfig, file);
    return null;
  } catch (e) {
    return e instanceof UnsupportedByEngineError ? e.message : null;
  }
}
