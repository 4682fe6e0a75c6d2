/** Help, version and exit codes of the command line: the same for every command (issue 24, items 1 and 14). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dispatch, USAGE, VERSION } from '../../src/cli/dispatch';
import { commandTable, commandUsage } from '../../src/cli/commands';

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await dispatch(argv, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const NAMES = commandTable()
  .split('\n')
  .filter((l) => /^ {2}[a-z]/.test(l))
  .map((l) => l.trim().split(' ')[0]);

test('the command table has the commands the help test walks through', () => {
  for (const n of ['make-demo-model', 'trace', 'analyze-weights', 'dataset-info', 'eval', 'merge', 'sweep', 'doctor', 'env', 'experiment', 'compare'])
    assert.ok(NAMES.includes(n), n);
});

test('COMMAND --help and COMMAND -h print that command usage on stdout and exit 0, for every command', async () => {
  for (const name of NAMES) {
    for (const flag of ['--help', '-h']) {
      const r = await cli(name, flag);
      assert.equal(r.code, 0, `${name} ${flag}: ${r.err}`);
      assert.equal(r.err, '', `${name} ${flag} writes nothing on stderr`);
      assert.ok(r.out.startsWith(`moe-scope ${name} `), `${name} ${flag} prints its usage, got ${r.out.slice(0, 80)}`);
      assert.ok(!r.out.includes('Commands:'), `${name} ${flag} prints only its own usage`);
    }
  }
  // --help wins wherever it stands, even after other options.
  const r = await cli('eval', '--model', 'x', '--help');
  assert.equal(r.code, 0);
  assert.match(r.out, /^moe-scope eval --model DIR/);
});

test('help COMMAND prints that command usage; help and --help alone print the overview', async () => {
  for (const name of NAMES) {
    const r = await cli('help', name);
    assert.equal(r.code, 0, name);
    assert.equal(r.out, `moe-scope ${commandUsage(name)}`);
  }
  for (const argv of [['help'], ['--help'], ['-h']]) {
    const r = await cli(...argv);
    assert.equal(r.code, 0, argv.join(' '));
    assert.equal(r.out, USAGE);
  }
  const bad = await cli('help', 'frobnicate');
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown command "frobnicate"/);
});

test('--version prints the package version', async () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
  for (const flag of ['--version', '-V']) {
    const r = await cli(flag);
    assert.equal(r.code, 0);
    assert.equal(r.out, `moe-scope ${VERSION}`);
  }
});

test('an unknown option exits 2 with the command usage, like a missing argument; no "-- \\"--x\\"" advice', async () => {
  for (const name of ['trace', 'merge', 'sweep', 'compare', 'eval', 'env']) {
    const r = await cli(name, '--frobnicate');
    assert.equal(r.code, 2, `${name}: ${r.err}`);
    const [first] = r.err.split('\n');
    assert.equal(first, `moe-scope ${name}: unknown option --frobnicate`);
    assert.ok(r.err.includes(`  ${commandUsage(name)!.split('\n')[0]}`), `${name} prints its usage`);
    assert.ok(!r.err.includes('place it at the end'), name);
  }
  const missing = await cli('eval', '--data', 'x', '--out', 'y');
  assert.equal(missing.code, 2);
  assert.match(missing.err, /^moe-scope eval: --model DIR is required\n/);
});

test('no command: the overview on stderr and exit 2; an unknown command: exit 2', async () => {
  const none = await cli();
  assert.equal(none.code, 2);
  assert.equal(none.err, USAGE);
  const unknown = await cli('frobnicate');
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /^moe-scope: unknown command "frobnicate"/);
});

test("eval's usage names each option once", () => {
  const usage = commandUsage('eval')!;
  const options: string[] = usage.match(/\[--[a-z-]+/g) ?? [];
  assert.deepEqual(options.length, new Set(options).size, `repeated: ${options.filter((o, i) => options.indexOf(o) !== i).join(', ')}`);
});
