/**
 * The Python interpreter for tests that need PyTorch and transformers (the PyTorch engine's worker and
 * the transformers-reference checks): MOE_SCOPE_PYTHON, else the repository's .venv made by
 * scripts/setup-python.sh. Never skips: when it is missing, the test fails and says how to get it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './models';

export function testPython(): string {
  const fromEnv = process.env.MOE_SCOPE_PYTHON;
  const candidate = fromEnv || path.join(REPO_ROOT, '.venv', 'bin', 'python');
  if (!fs.existsSync(candidate)) {
    throw new Error(`no Python for the PyTorch tests at ${candidate}: run 'bash scripts/setup-python.sh' (npm test does) or set MOE_SCOPE_PYTHON`);
  }
  try {
    execFileSync(candidate, ['-c', 'import torch, transformers, safetensors'], { stdio: 'pipe' });
  } catch (e) {
    throw new Error(
      `${candidate} cannot import torch, transformers and safetensors: run 'bash scripts/setup-python.sh' (${String((e as { stderr?: Buffer }).stderr ?? e)
        .trim()
        .split('\n')
        .pop()})`,
      { cause: e },
    );
  }
  return candidate;
}
