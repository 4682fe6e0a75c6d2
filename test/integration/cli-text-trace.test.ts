/** Text `trace` as a user sees it: next-token predictions printed, and nothing from the GPU drivers on a successful run (issue 24, items 4 and 13). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { REPO_ROOT, tempDir, DEMO_CORPUS } from '../support/models';
import { topNextTokens } from '../../src/analysis/nextTokens';

const cli = path.join(REPO_ROOT, 'dist', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });

test('trace prints the five most probable next tokens, and a successful run prints no driver noise', () => {
  const dir = tempDir('cli-text-trace');
  const made = run(['make-demo-model', '--out', dir, '--corpus', DEMO_CORPUS]);
  assert.equal(made.status, 0, made.stderr);
  const text = 'What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:';
  const cache = tempDir('cli-text-trace-cache');
  const plain = run(['trace', '--model', dir, '--text', text, '--cache', cache]);
  assert.equal(plain.status, 0, plain.stderr);
  const line = plain.stdout.split('\n').find((l) => l.startsWith('next-token predictions: '));
  assert.ok(line, `no next-token line in:\n${plain.stdout}`);
  const shown = [...line.matchAll(/ (\d+\.\d)%/g)].map((m) => Number(m[1]));
  assert.equal(shown.length, 5, line);
  const j = JSON.parse(run(['trace', '--model', dir, '--text', text, '--json', '--cache', cache]).stdout);
  const want = topNextTokens(j.lastLogits, 5).map((t) => Number((100 * t.prob).toFixed(1)));
  assert.deepEqual(shown, want);
  // Quiet on success: the provider line, but nothing Dawn, Vulkan or the Wayland client wrote.
  assert.doesNotMatch(plain.stderr, /XDG_RUNTIME_DIR|Vulkan shader|dawn-src|BackendType::/, plain.stderr);
  assert.match(plain.stderr, /^provider: /m);
});
