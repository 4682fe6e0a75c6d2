// Reading a Hugging Face tokenizer from its folder: tokenizer.json and tokenizer_config.json through
// src/shared/readJson.ts (a regular file, bounded in size), with the line and column of a syntax error.

import { stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { jsonErrorOffset, readTextAsync } from '../../../../shared/readJson';
import { MoeTokenizer, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, TokenizerLoadError } from './moeTokenizer';

async function readJsonFile(file: string, what: string): Promise<unknown> {
  const unreadable = class extends TokenizerLoadError {
    constructor(f: string, problem: string) {
      super(`${f}: could not read ${what}: ${problem}`, f);
    }
  };
  let raw = await readTextAsync(file, { error: unreadable });
  if (raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    const found = jsonErrorOffset(raw);
    const pos = found >= 0 ? found : raw.length;
    const before = raw.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    const where = pos >= raw.length ? `at the end of the file (line ${line}, column ${column})` : `at line ${line}, column ${column}`;
    throw new TokenizerLoadError(`${file}: invalid JSON ${where}: ${(err as Error).message}`, file);
  }
}

/**
 * Loads tokenizer.json (and tokenizer_config.json when present) from a Hugging Face checkpoint
 * folder. A path to a tokenizer.json file is accepted too.
 */
export async function loadTokenizer(modelDir: string): Promise<MoeTokenizer> {
  let dir = modelDir;
  let info;
  try {
    info = await stat(modelDir);
  } catch {
    throw new TokenizerLoadError(`${modelDir}: no such folder; expected a Hugging Face checkpoint folder containing ${TOKENIZER_FILE}`, modelDir);
  }
  if (info.isFile() && basename(modelDir) === TOKENIZER_FILE) dir = dirname(modelDir);
  else if (!info.isDirectory()) {
    throw new TokenizerLoadError(`${modelDir}: not a folder; expected a Hugging Face checkpoint folder containing ${TOKENIZER_FILE}`, modelDir);
  }
  const file = join(dir, TOKENIZER_FILE);
  const exists = await stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!exists) {
    throw new TokenizerLoadError(
      `The folder ${dir} lacks ${TOKENIZER_FILE}; a Hugging Face checkpoint folder is expected ` +
        `(config.json, ${TOKENIZER_FILE}, optionally ${TOKENIZER_CONFIG_FILE}, and the *.safetensors weights)`,
      file,
    );
  }
  const json = await readJsonFile(file, 'the tokenizer');
  const cfgFile = join(dir, TOKENIZER_CONFIG_FILE);
  const hasConfig = await stat(cfgFile).then(
    (s) => s.isFile(),
    () => false,
  );
  const config = hasConfig ? await readJsonFile(cfgFile, 'the tokenizer configuration') : {};
  return MoeTokenizer.fromJson(json, config, dir, true);
}
