/** The command line's one command table: every command in the help, one usage error printed the same way for all. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
// Not src/cli/main: it runs the CLI when it is the bundle's main module.
import { commandTable, runCommand } from '../../src/cli/commands';

async function run(argv: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommand(argv[0], argv.slice(1), { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

test('the help lists the model, dataset, evaluation, sweep and environment commands from the one table', () => {
  const help = commandTable();
  for (const name of ['make-demo-model', 'trace', 'analyze-weights', 'dataset-info', 'eval', 'merge', 'sweep', 'doctor', 'env', 'experiment', 'compare'])
    assert.match(help, new RegExp(`^  ${name} `, 'm'), `${name} is in the help`);
});

test("a usage error of any command exits 2 with the message and that command's usage", async () => {
  const cases: [string[], RegExp][] = [
    [['trace', '--text', 'x'], /--model DIR is required/],
    [['make-demo-model', '--out', '/nonexistent', '--family', 'gpt'], /--family must be one of olmoe, mixtral/],
    [['trace', '--model', '/nonexistent', '--text', 'x', '--engine', 'jax'], /--engine must be onnxruntime, pytorch or auto, not "jax"/],
    [['sweep'], /--out SWEEP_DIR is required/],
    [['dataset-info'], /--data PATH is required/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    assert.equal(r.code, 2, argv.join(' '));
    const [first, ...rest] = r.err.split('\n');
    assert.match(first, new RegExp(`^moe-scope ${argv[0]}: `));
    assert.match(first, message);
    const usage = commandTable()
      .split('\n')
      .find((l) => l.startsWith(`  ${argv[0]} `));
    assert.ok(usage && rest.includes(usage), `${argv.join(' ')} prints its usage line`);
  }
});

test('names that are not commands are not found, including inherited object members', async () => {
  for (const name of ['frobnicate', 'toString', 'constructor', '__proto__']) assert.equal((await run([name])).code, null, name);
});
