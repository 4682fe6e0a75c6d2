/** Generated checkpoints for tests, made once per test file in a temporary folder. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeDemoModel, type DemoModelOptions } from '../../src/engines/onnxruntime/demo/makeDemoModel';
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import { referenceForward, type ReferenceResult } from './referenceModel';

/** Tests run from the repository root (npm test, scripts/run-test.sh). */
export const REPO_ROOT = process.env.MOE_SCOPE_ROOT ?? process.cwd();
export const DEMO_CORPUS = path.join(REPO_ROOT, 'media', 'demo-data', 'mmlu');

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `moe-scope-${prefix}-`));
}

export function makeModel(options: DemoModelOptions, dir = tempDir(options.family)): string {
  makeDemoModel(dir, { corpusDir: DEMO_CORPUS, ...options });
  return dir;
}

/** The independent TypeScript forward pass over the same files the engine reads. */
export function reference(dir: string, ids: number[], routerLogitOffsets?: (layer: number) => ArrayLike<number> | undefined): ReferenceResult {
  const ck = Checkpoint.open(dir);
  return referenceForward(ck.config, (n) => ({ shape: ck.tensor(n).shape, data: ck.readFloat32(n) }), ids, { hasTensor: (n) => ck.has(n), routerLogitOffsets });
}

export const SAMPLE_QUESTION = `The following are multiple choice questions (with answers) about high school biology.

Which of the following is NOT a function of the cell membrane?
A. regulating what enters and leaves the cell
B. cell-to-cell recognition
C. synthesis of proteins
D. receiving chemical signals
Answer:`;
