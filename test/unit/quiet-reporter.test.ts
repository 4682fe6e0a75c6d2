/**
 * The console reporter of npm test (scripts/lib/quiet-spec-reporter.mjs): Dawn's "artificially reduced"
 * WebGPU warnings, written to stderr by every in-process WebGPU test, are dropped from the output and kept
 * in a log; other stderr lines and failures are printed as the spec reporter prints them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO_ROOT = process.env.MOE_SCOPE_ROOT ?? process.cwd();
const REPORTER = path.join(REPO_ROOT, 'scripts', 'lib', 'quiet-spec-reporter.mjs');
const DAWN_UNIFORM = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.';
const DAWN_STORAGE = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.';

function runWithReporter(files: Record<string, string>): { stdout: string; status: number | null; log: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-reporter-'));
  try {
    for (const [name, source] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), source);
    const log = path.join(dir, 'native.log');
    const r = spawnSync(process.execPath, ['--test', `--test-reporter=${REPORTER}`, '--test-reporter-destination=stdout', ...Object.keys(files)], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, MOE_TEST_NATIVE_LOG: log, NODE_TEST_CONTEXT: undefined },
      timeout: 60_000,
    });
    return { stdout: r.stdout + r.stderr, status: r.status, log: fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '' };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const header = `const { test } = require('node:test');\nconst assert = require('node:assert');\n`;

test('a passing WebGPU-style test prints no Dawn warning; other stderr lines and the tally stay; the warning is logged', () => {
  const r = runWithReporter({
    'gpu.test.js': `${header}test('creates an adapter', () => { process.stderr.write(${JSON.stringify(`${DAWN_UNIFORM}\n${DAWN_STORAGE}\n`)}); process.stderr.write('a line of our own\\n'); });\n`,
  });
  assert.equal(r.status, 0, r.stdout);
  assert.ok(!r.stdout.includes('artificially reduced'), `Dawn's warning reached the output:\n${r.stdout}`);
  assert.match(r.stdout, /a line of our own/);
  assert.match(r.stdout, /✔ creates an adapter/);
  assert.match(r.stdout, /pass 1/);
  assert.match(r.log, /gpu\.test\.js: Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced/);
  assert.match(r.log, /maxDynamicStorageBuffersPerPipelineLayout/);
});

test('a failing test still shows its failure and fails the run', () => {
  const r = runWithReporter({
    'fails.test.js': `${header}test('parity', () => { process.stderr.write(${JSON.stringify(`${DAWN_STORAGE}\n`)}); assert.equal(1, 2, 'logits differ by 3e-2'); });\n`,
  });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout, /✖ parity/);
  assert.match(r.stdout, /logits differ by 3e-2/);
  assert.match(r.stdout, /fail 1/);
  assert.ok(!r.stdout.includes('artificially reduced'));
});

test('a warning that only resembles Dawn’s is printed', () => {
  const r = runWithReporter({
    'other.test.js': `${header}test('warns', () => { process.stderr.write('Warning: maxBindGroups reduced because the driver is broken\\n'); });\n`,
  });
  assert.equal(r.status, 0, r.stdout);
  assert.match(r.stdout, /maxBindGroups reduced because the driver is broken/);
  assert.equal(r.log, '');
});
