/**
 * Which Python runs the PyTorch engine when none is given by the editor: an explicit one (--python,
 * moeScope.pythonPath), else MOE_SCOPE_PYTHON, else the checkout's own `.venv` (which `npm test` and
 * scripts/setup-python.sh build with torch and transformers), else python3 on PATH.
 *
 * A path with a folder in it (`.venv/bin/python`, `../py/bin/python3`) is taken relative to the folder the
 * user gave it from (the current folder on the command line, the workspace folder in the editor), never
 * the worker's folder that the interpreter later runs in; a bare name (`python3`) is looked up on PATH.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PythonChoice {
  python: string;
  /** Where it came from, in words: "--python", "MOE_SCOPE_PYTHON", "the checkout's .venv", "python3 on PATH". */
  source: string;
}

/** An interpreter as given, made absolute against `base` when it names a path rather than a command. */
export function resolveInterpreter(given: string, base: string): string {
  const p = given.trim();
  if (p === '' || path.isAbsolute(p)) return p;
  if (p.startsWith('~/') && process.env.HOME) return path.join(process.env.HOME, p.slice(2));
  const hasFolder = p.includes('/') || (path.sep === '\\' && p.includes('\\'));
  return hasFolder ? path.resolve(base, p) : p;
}

/** The virtual environment's interpreter under `root` (`.venv/bin/python`, or Scripts\python.exe on Windows), if there is one. */
export function venvPython(root: string): string | null {
  const candidates = process.platform === 'win32' ? [path.join(root, '.venv', 'Scripts', 'python.exe')] : [path.join(root, '.venv', 'bin', 'python')];
  for (const c of candidates) {
    try {
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // not there
    }
  }
  return null;
}

/** The repository checkout this code runs from: the folder above python/moe_scope_worker (workerDir's parent). */
export function checkoutRoot(workerDir: string): string {
  return path.dirname(workerDir);
}

export function choosePython(opts: { explicit?: string; explicitSource?: string; env?: string; base: string; roots: string[] }): PythonChoice {
  if (opts.explicit && opts.explicit.trim()) return { python: resolveInterpreter(opts.explicit, opts.base), source: opts.explicitSource ?? '--python' };
  if (opts.env && opts.env.trim()) return { python: resolveInterpreter(opts.env, opts.base), source: 'MOE_SCOPE_PYTHON' };
  for (const root of opts.roots) {
    const venv = venvPython(root);
    if (venv) return { python: venv, source: `the .venv of ${root}` };
  }
  return { python: 'python3', source: 'python3 on PATH' };
}
