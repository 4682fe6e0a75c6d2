/**
 * The int8 / int4 graph cache: its build (quantised weights, the decoder graph and the intervention graph)
 * and the integrity record every cache folder gets, so that a folder written for another precision, or one
 * whose files were truncated or replaced, is rebuilt rather than used.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Checkpoint } from '../checkpoint';
import { buildDecoderGraph, GRAPH_VERSION, type GraphOptions } from '../graph';
import { prepareQuantizedWeights } from './prepareQuantized';
import type { WeightPrecision } from '../../../shared/protocol';
import { readRegularText } from '../../../shared/safeFiles';

export const INTEGRITY_FILE = 'integrity.json';

export const QUANTIZED_ALL_EXPERTS_REFUSAL = (precision: WeightPrecision) =>
  `the all-experts analysis reads every expert's float weights, and this model is loaded at ${precision}: load it with precision fp32 (--precision fp32, setting moeScope.precision) for that analysis`;

export async function buildQuantizedCache(
  ckpt: Checkpoint,
  dir: string,
  precision: 'int8' | 'int4',
  opts: Omit<GraphOptions, 'quantized' | 'routerInputs'>,
  log: (m: string) => void,
): Promise<void> {
  const t0 = Date.now();
  const weights = await prepareQuantizedWeights(ckpt, dir, precision === 'int8' ? 8 : 4, log);
  const graph = { ...opts, quantized: weights };
  fs.writeFileSync(path.join(dir, 'model.onnx'), buildDecoderGraph(ckpt.arch, ckpt.names, weights, graph));
  // Same weights, plus router-bias inputs (interventions); written now so that the cache is complete.
  fs.writeFileSync(path.join(dir, 'model-intervention.onnx'), buildDecoderGraph(ckpt.arch, ckpt.names, weights, { ...graph, routerInputs: true }));
  fs.writeFileSync(
    path.join(dir, 'meta.json'),
    JSON.stringify(
      {
        checkpoint: ckpt.dir,
        graphVersion: GRAPH_VERSION,
        precision,
        ...opts,
        convertedBytes: weights.convertedBytes,
        linkedFiles: weights.linkedFiles,
        quantizeMs: Date.now() - t0,
      },
      null,
      2,
    ),
  );
}

interface IntegrityRecord {
  precision: WeightPrecision;
  files: Record<string, number>;
  /**
   * Each file's modification time: a file rewritten in place at the same size (another process writing into
   * the cache, a copy over it) is caught without hashing gigabytes at every load. Records from before it
   * existed are checked by size alone.
   */
  modified?: Record<string, number>;
}

/** Records the cache's precision and every file's size and modification time (written last, just before the folder is renamed into place). */
export function writeCacheIntegrity(dir: string, precision: WeightPrecision): void {
  const files: Record<string, number> = {};
  const modified: Record<string, number> = {};
  for (const name of fs.readdirSync(dir).sort()) {
    const st = fs.statSync(path.join(dir, name));
    files[name] = st.size;
    modified[name] = st.mtimeMs;
  }
  const record: IntegrityRecord = { precision, files, modified };
  fs.writeFileSync(path.join(dir, INTEGRITY_FILE), JSON.stringify(record, null, 2));
}

/**
 * Null when the cache folder holds what was written for `precision`; otherwise what is wrong. Folders from
 * before the record existed pass when float (they were checked by session creation alone, as before); a
 * quantised one must have it.
 */
export function checkCacheIntegrity(dir: string, precision: WeightPrecision): string | null {
  const file = path.join(dir, INTEGRITY_FILE);
  if (!fs.existsSync(file)) return precision === 'int8' || precision === 'int4' ? `${INTEGRITY_FILE} is missing` : null;
  let record: IntegrityRecord;
  try {
    record = JSON.parse(readRegularText(file, { maxBytes: 16 << 20 })) as IntegrityRecord;
  } catch (e) {
    return `${INTEGRITY_FILE} does not parse (${(e as Error).message})`;
  }
  if (!record || typeof record.files !== 'object' || record.files === null) return `${INTEGRITY_FILE} has no "files" object`;
  if (record.precision !== precision) return `it was built for precision ${String(record.precision)}, not ${precision}`;
  for (const [name, size] of Object.entries(record.files)) {
    let actual: fs.Stats;
    try {
      actual = fs.statSync(path.join(dir, name));
    } catch {
      return `${name} is missing`;
    }
    if (actual.size !== size) return `${name} is ${actual.size} bytes, ${size} were written`;
    const when = record.modified?.[name];
    if (typeof when === 'number' && actual.mtimeMs !== when)
      return `${name} was modified after the cache was built (${new Date(actual.mtimeMs).toISOString()}, built ${new Date(when).toISOString()})`;
  }
  return null;
}
