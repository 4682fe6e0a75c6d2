/*
 * Finished layers saved per checkpoint, keyed by the config text and every weight file's name, size and
 * mtime, so an edited or re-downloaded checkpoint is analysed afresh.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { Checkpoint } from '../checkpoint';
import { readRegularText } from '../../../shared/safeFiles';
import type { LayerWeightSimilarity } from '../../../shared/protocol';

/** Bumped whenever a definition or the result shape changes, so cached results are recomputed. */
export const WEIGHT_ANALYSIS_VERSION = 2;

export function checkpointKey(ckpt: Checkpoint): string {
  const h = createHash('sha256');
  h.update(`moe-scope weight analysis v${WEIGHT_ANALYSIS_VERSION}\n`);
  h.update(ckpt.configText);
  for (const f of [...ckpt.files].sort((a, b) => a.file.localeCompare(b.file))) {
    const st = fs.statSync(f.file);
    h.update(`\n${path.relative(ckpt.dir, f.file)}\t${st.size}\t${st.mtimeMs}`);
  }
  return h.digest('hex');
}

interface CacheFile {
  version: number;
  key: string;
  numExperts: number;
  layers: LayerWeightSimilarity[];
}

export function readCache(file: string, key: string, numExperts: number): Map<number, LayerWeightSimilarity> {
  const out = new Map<number, LayerWeightSimilarity>();
  let data: CacheFile;
  try {
    data = JSON.parse(readRegularText(file, { maxBytes: 256 << 20 })) as CacheFile;
  } catch {
    // Missing, or torn by a crash mid-write of an older version: either way, recompute.
    return out;
  }
  if (data?.version !== WEIGHT_ANALYSIS_VERSION || data.key !== key || data.numExperts !== numExperts || !Array.isArray(data.layers)) return out;
  const E2 = numExperts * numExperts;
  for (const l of data.layers) {
    if (l && Number.isInteger(l.layer) && Array.isArray(l.all) && l.all.length === E2 && Array.isArray(l.router) && l.router.length === E2) out.set(l.layer, l);
  }
  return out;
}

let cacheWrites = 0;

export function writeCache(file: string, key: string, numExperts: number, layers: Map<number, LayerWeightSimilarity>): void {
  const data: CacheFile = { version: WEIGHT_ANALYSIS_VERSION, key, numExperts, layers: [...layers.values()].sort((a, b) => a.layer - b.layer) };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Write-then-rename so a reader (or a crash) never sees half a file.
  const tmp = `${file}.${process.pid}.${++cacheWrites}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(data));
  fs.renameSync(tmp, file);
}
