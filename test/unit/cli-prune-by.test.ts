import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { experimentSpecFromOptions } from '../../src/cli/experiments';
import { parseSpec, SpecError } from '../../src/sweep/spec';
import { gridInterventionName } from '../../src/sweep/pruningGrid';

test('experiment --prune-by: options to a plan spec, and clear messages for bad combinations', () => {
  assert.deepEqual(experimentSpecFromOptions({ 'prune-by': 'man', ratio: '0.25' }), {
    kind: 'prune-by',
    plan: { criterion: 'man', mode: 'per-layer', ratio: 0.25 },
  });
  assert.deepEqual(experimentSpecFromOptions({ 'prune-by': 'gate', ratio: '0.5', global: true, keep: '10' }), {
    kind: 'prune-by',
    plan: { criterion: 'gate', mode: 'global', ratio: 0.5, keepPerLayer: 10 },
  });
  assert.deepEqual(experimentSpecFromOptions({ 'prune-by': 'count', threshold: '3' }), {
    kind: 'prune-by',
    plan: { criterion: 'count', mode: 'threshold', threshold: 3 },
  });
  assert.throws(() => experimentSpecFromOptions({ 'prune-by': 'norm', ratio: '0.5' }), /--prune-by must be one of count, gate, man, msan, weights/);
  assert.throws(() => experimentSpecFromOptions({ 'prune-by': 'man' }), /exactly one of --ratio R .* or --threshold T/);
  assert.throws(() => experimentSpecFromOptions({ 'prune-by': 'man', ratio: '1' }), /--ratio must be a fraction in \(0, 1\)/);
  assert.throws(() => experimentSpecFromOptions({ 'prune-by': 'man', ratio: '0.2', global: true, 'per-layer': true }), /not both/);
  assert.throws(() => experimentSpecFromOptions({ 'prune-by': 'man', threshold: '2', global: true }), /drop --global/);
  assert.throws(() => experimentSpecFromOptions({ prune: 'never-activated', ratio: '0.2' }), /go with --prune-by/);
  assert.throws(() => experimentSpecFromOptions({ prune: 'never-activated', 'prune-by': 'man', ratio: '0.2' }), /give exactly one/);
});

test('sweep SPEC pruning grid: fields checked with their JSON path', () => {
  const file = path.join(process.cwd(), 'spec.json');
  const base = { data: '.', models: [{ name: 'm', path: '.' }] };
  const bad = (pruning: unknown, re: RegExp) =>
    assert.throws(
      () => parseSpec({ ...base, pruning }, file),
      (e: unknown) => e instanceof SpecError && re.test(e.message),
    );
  bad({ baseline: '/nonexistent/run', criteria: ['man'], ratios: [0.5] }, /field "pruning.baseline" .*has no summary.json/);
  bad(['x'], /field "pruning" must be an object/);
  bad({ baseline: '.', criteria: ['man'], ratios: [0.5], extra: 1 }, /field "pruning.extra" is not a pruning field/);
  assert.equal(gridInterventionName('msan', 0.125), 'prune-msan-12.5pct');
});
