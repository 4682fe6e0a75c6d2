/**
 * The one place tests, the end-to-end suite and the benchmarks find the full MMLU: MMLU_DIR when set,
 * else the copy vendored in data/mmlu/mmlu.tar.xz, unpacked on first use into .data/mmlu by
 * scripts/unpack-mmlu.sh (checked against its SHA256SUMS). Nothing outside the repository is needed.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = process.env.MOE_SCOPE_ROOT ?? process.cwd();
let cached: string | undefined;

/** The MMLU root folder: data/{dev,val,test}/*.csv, categories.json, LICENSE. Throws with the reason. */
export function mmluDir(): string {
  if (cached) return cached;
  try {
    cached = execFileSync('bash', [path.join(ROOT, 'scripts', 'unpack-mmlu.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
    throw new Error(`MMLU data unavailable: ${stderr || (e as Error).message}`, { cause: e });
  }
  return cached;
}

export const mmluDataDir = (): string => path.join(mmluDir(), 'data');
