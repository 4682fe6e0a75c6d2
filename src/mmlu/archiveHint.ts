/**
 * What to tell someone who points --data (or moeScope.evaluation.dataPath) at a folder that holds MMLU as
 * an archive, as the repository's data/mmlu does: which archive, and how to unpack it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const ARCHIVE = /\.(tar\.xz|tar\.gz|tgz|tar|zip)$/i;

/** '' when `dir` holds no archive; else a sentence naming the archive and the command that unpacks it. */
export function archiveHint(dir: string): string {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => ARCHIVE.test(n));
  } catch {
    return '';
  }
  if (names.length === 0) return '';
  const archive = path.join(dir, names[0]);
  const isRepoCopy = names[0] === 'mmlu.tar.xz' && fs.existsSync(path.join(dir, '..', '..', 'scripts', 'unpack-mmlu.sh'));
  const unpack = isRepoCopy
    ? `run "bash scripts/unpack-mmlu.sh" in the repository (it unpacks it into .data/mmlu, checks it, and prints that folder) and pass --data .data/mmlu`
    : `unpack it (e.g. mkdir -p mmlu && tar -xf ${archive} -C mmlu) and pass the unpacked folder`;
  return `; this folder holds the archive ${names[0]}, not the CSV files: ${unpack}`;
}
