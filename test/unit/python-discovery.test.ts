/** Which Python the PyTorch engine runs (issue 24, item 3): relative paths from the current folder, the checkout's .venv preferred. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { choosePython, resolveInterpreter, venvPython } from '../../src/engines/client/pythonDiscovery';
import { defaultPython, workerDir } from '../../src/engines/client/pythonWorker';

function withVenv(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-py-'));
  fs.mkdirSync(path.join(root, '.venv', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(root, '.venv', 'bin', 'python'), '#!/bin/sh\n', { mode: 0o755 });
  return root;
}

test('a relative interpreter path is taken from the given folder; a bare command name stays a PATH lookup', () => {
  assert.equal(resolveInterpreter('.venv/bin/python', '/home/u/proj'), '/home/u/proj/.venv/bin/python');
  assert.equal(resolveInterpreter('../py/bin/python3', '/home/u/proj'), '/home/u/py/bin/python3');
  assert.equal(resolveInterpreter('/usr/bin/python3', '/home/u/proj'), '/usr/bin/python3');
  assert.equal(resolveInterpreter('python3', '/home/u/proj'), 'python3');
});

test('--python and MOE_SCOPE_PYTHON win over a .venv, and a relative one is resolved against the current folder', () => {
  const root = withVenv();
  try {
    assert.deepEqual(choosePython({ explicit: '.venv/bin/python', base: '/work/x', roots: [root] }), {
      python: '/work/x/.venv/bin/python',
      source: '--python',
    });
    assert.deepEqual(choosePython({ env: 'bin/py', base: '/work/x', roots: [root] }), { python: '/work/x/bin/py', source: 'MOE_SCOPE_PYTHON' });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('with nothing given, the .venv of the first root that has one is preferred to python3', () => {
  const root = withVenv();
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-py-'));
  try {
    assert.equal(venvPython(empty), null);
    assert.equal(venvPython(root), path.join(root, '.venv', 'bin', 'python'));
    const c = choosePython({ base: '/', roots: [empty, root] });
    assert.equal(c.python, path.join(root, '.venv', 'bin', 'python'));
    assert.match(c.source, /\.venv/);
    assert.deepEqual(choosePython({ base: '/', roots: [empty] }), { python: 'python3', source: 'python3 on PATH' });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

test('defaultPython (the command line): a relative MOE_SCOPE_PYTHON is resolved against the current folder, not the worker folder', () => {
  const saved = process.env.MOE_SCOPE_PYTHON;
  try {
    process.env.MOE_SCOPE_PYTHON = '.venv/bin/python';
    assert.equal(defaultPython(), path.join(process.cwd(), '.venv', 'bin', 'python'));
    assert.equal(defaultPython('rel/python'), path.join(process.cwd(), 'rel', 'python'));
    delete process.env.MOE_SCOPE_PYTHON;
    // No setting at all: the checkout's .venv when it has one (npm test builds it), else python3.
    const checkoutVenv = venvPython(path.dirname(workerDir()));
    assert.equal(defaultPython(), checkoutVenv ?? 'python3');
  } finally {
    if (saved === undefined) delete process.env.MOE_SCOPE_PYTHON;
    else process.env.MOE_SCOPE_PYTHON = saved;
  }
});
