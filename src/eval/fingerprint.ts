/**
 * What a run's results depend on, so that a resume can prove it continues the same experiment.
 *
 * Model content: every file the engine reads (config, tokenizer, safetensors shards and their index),
 * each as size + SHA-256. Hashing gigabytes on every resume would take minutes, so hashes are cached per
 * file keyed by (real path, size, mtime, inode): a file replaced or rewritten gets a new key and is hashed
 * again, an untouched one is looked up. Hashing streams asynchronously, so an editor host stays responsive.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import { readRegularText } from '../shared/safeFiles';

export interface FileFingerprint {
  size: number;
  sha256: string;
}

/** File name -> fingerprint, for the files of a checkpoint folder that change what the model computes. */
export type ModelFingerprint = Record<string, FileFingerprint>;

const MODEL_FILE =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|model\.safetensors\.index\.json|.*\.safetensors)$/;

export function defaultHashCache(): string {
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'moe-scope', 'file-hashes.json');
}

type HashCache = Record<string, { key: string; sha256: string }>;

function readCache(file: string): HashCache {
  try {
    const v = JSON.parse(readRegularText(file, { maxBytes: 64 << 20 })) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as HashCache) : {};
  } catch {
    return {};
  }
}

function writeCache(file: string, cache: HashCache): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
    fs.writeFileSync(tmp, JSON.stringify(cache));
    fs.renameSync(tmp, file);
  } catch {
    // a cache that cannot be written only costs a re-hash next time
  }
}

async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20, signal })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Fingerprints the model files in `dir` (symlinks followed, as the engine follows them). */
export async function modelFingerprint(dir: string, options: { cacheFile?: string; signal?: AbortSignal } = {}): Promise<ModelFingerprint> {
  const cacheFile = options.cacheFile ?? defaultHashCache();
  const cache = readCache(cacheFile);
  let changed = false;
  const out: ModelFingerprint = {};
  for (const name of fs
    .readdirSync(dir)
    .filter((n) => MODEL_FILE.test(n))
    .sort()) {
    const file = path.join(dir, name);
    const st = fs.statSync(file);
    if (!st.isFile()) continue; // the checkpoint reader refuses non-regular files with its own message
    const real = fs.realpathSync(file);
    const key = `${st.size}:${st.mtimeMs}:${st.ino}:${st.dev}`;
    let sha = cache[real]?.key === key ? cache[real].sha256 : null;
    if (!sha) {
      sha = await sha256File(file, options.signal);
      cache[real] = { key, sha256: sha };
      changed = true;
    }
    out[name] = { size: st.size, sha256: sha };
  }
  if (changed) writeCache(cacheFile, cache);
  return out;
}

/**
 * Paths (dotted) at which two JSON values differ, each with both values, e.g.
 * "options.shots (5 vs 0)". Generic on purpose: any result-changing field added to the manifest later is
 * compared without touching this code.
 */
export function jsonDifferences(a: unknown, b: unknown, at = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  const isObj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort();
    return keys.flatMap((k) => jsonDifferences(ao[k], bo[k], at ? `${at}.${k}` : k));
  }
  return [`${at || 'value'} (${short(a)} vs ${short(b)})`];
}

function short(v: unknown): string {
  if (v === undefined) return 'absent';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
