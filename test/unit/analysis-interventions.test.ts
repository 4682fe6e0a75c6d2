/** Parsing, validation and derivation of router interventions (src/analysis/interventions.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  deriveIntervention,
  interventionRows,
  InterventionError,
  maskedPerLayer,
  normalizeIntervention,
  parseBiasJson,
  parseMaskSpec,
  topAccuracyExperts,
  validateIntervention,
} from '../../src/analysis/interventions';
import { syntheticSummary } from '../support/synthetic';
import { REPO_ROOT } from '../support/models';
import type { RouterIntervention } from '../../src/shared/protocol';

const SHAPE = { numLayers: 4, numExperts: 8, topK: 2 };

test('mask specs parse and bad ones name the option and the offending part', () => {
  assert.deepEqual(parseMaskSpec('0:3, 2:7,0:3'), [
    [0, 3],
    [2, 7],
    [0, 3],
  ]);
  assert.throws(
    () => parseMaskSpec('0:3,x:1'),
    (e: unknown) => e instanceof InterventionError && /--mask-experts: "x:1" is not LAYER:EXPERT/.test(e.message),
  );
  assert.throws(() => parseMaskSpec(' , '), /expected LAYER:EXPERT pairs/);
  assert.throws(() => parseMaskSpec('1:-2'), /"1:-2" is not LAYER:EXPERT/);
});

test('router-bias files parse and bad ones name the file, the field and the problem', () => {
  assert.deepEqual(parseBiasJson('{"1": {"3": 0.5, "4": -1}, "0": {"0": 2}}', 'b.json'), [
    [0, 0, 2],
    [1, 3, 0.5],
    [1, 4, -1],
  ]);
  assert.throws(() => parseBiasJson('{"1": ', 'b.json'), /b\.json: not valid JSON/);
  assert.throws(() => parseBiasJson('[1]', 'b.json'), /b\.json: expected an object .* got an array/);
  assert.throws(() => parseBiasJson('{"one": {}}', 'b.json'), /b\.json: key "one" is not a layer number/);
  assert.throws(() => parseBiasJson('{"1": 3}', 'b.json'), /b\.json: layer 1: expected an object/);
  assert.throws(() => parseBiasJson('{"1": {"e": 1}}', 'b.json'), /b\.json: layer 1: key "e" is not an expert number/);
  assert.throws(() => parseBiasJson('{"1": {"2": "big"}}', 'b.json'), /b\.json: layer 1, expert 2: bias must be a finite number, got the string "big"/);
});

test('normalisation sorts, deduplicates, sums repeated biases and drops zeros and biases on masked experts', () => {
  const iv = normalizeIntervention({
    mask: [
      [2, 1],
      [0, 5],
      [2, 1],
    ],
    bias: [
      [1, 1, 0.5],
      [1, 1, 0.25],
      [0, 5, 3],
      [3, 0, 0],
    ],
  });
  assert.deepEqual(iv, {
    mask: [
      [0, 5],
      [2, 1],
    ],
    bias: [[1, 1, 0.75]],
  });
  const rows = interventionRows(iv, SHAPE);
  assert.equal(rows[0][5], -Infinity);
  assert.equal(rows[1][1], 0.75);
  assert.equal(
    rows[3].every((v) => v === 0),
    true,
  );
});

test('validation refuses experts out of range and layers left with fewer than top_k experts', () => {
  assert.throws(
    () => validateIntervention({ mask: [[4, 0]], bias: [] }, SHAPE, 'x.json'),
    /x\.json: mask: layer 4 does not exist \(the model has layers 0\.\.3\)/,
  );
  assert.throws(() => validateIntervention({ mask: [], bias: [[0, 8, 1]] }, SHAPE), /bias: expert 8 of layer 0 does not exist/);
  const sixMasked = Array.from({ length: 6 }, (_, e) => [1, e] as [number, number]);
  validateIntervention({ mask: sixMasked, bias: [] }, SHAPE);
  assert.throws(() => validateIntervention({ mask: [...sixMasked, [1, 6]], bias: [] }, SHAPE), /layer 1 would keep 1 of 8 experts, fewer than the 2/);
  assert.throws(
    () => validateIntervention({ mask: [[1, 2, 3]], bias: [] } as never, SHAPE, 'ipc'),
    /ipc: mask\[0\] must be a \[layer, expert\] pair, got \[1,2,3\]/,
  );
  assert.throws(() => validateIntervention({ mask: [] } as never, SHAPE, 'ipc'), /ipc: expected \{mask/);
  const all = Array.from({ length: 8 }, (_, e) => [1, e] as [number, number]);
  assert.throws(() => validateIntervention({ mask: all, bias: [] }, SHAPE), /refusing to mask every expert of a layer/);
});

test('derivations from a run summary select exactly the experts their rule names', () => {
  const s = syntheticSummary({ numLayers: 3, numExperts: 16, topK: 2, seed: 11 });
  const never = deriveIntervention(s, { kind: 'prune-never-activated' }, 'base');
  assert.deepEqual(
    never.mask,
    s.layers.flatMap((l) => l.neverActivated.map((e) => [l.layer, e])),
  );
  assert.deepEqual(
    maskedPerLayer(never, 3),
    s.layers.map((l) => l.neverActivated.length),
  );
  assert.match(never.description!, /prune never-activated experts of base \(answer scope\)/);

  const threshold = 5;
  const below = deriveIntervention(s, { kind: 'prune-below-count', count: threshold });
  for (const [l, e] of below.mask) assert.ok(s.layers[l].activationCounts[e] < threshold);
  assert.equal(
    below.mask.length,
    s.layers.reduce((a, l) => a + l.activationCounts.filter((c) => c < threshold).length, 0),
  );

  const steer = deriveIntervention(s, { kind: 'steer-top-accuracy', fraction: 0.25, bias: 1.5 });
  assert.equal(steer.mask.length, 0);
  for (const ls of s.layers) {
    const chosen = steer.bias.filter((b) => b[0] === ls.layer).map((b) => b[1]);
    const ranked = ls.expertAccuracy.filter((a) => a !== null);
    assert.equal(chosen.length, Math.ceil(0.25 * ranked.length));
    const worstChosen = Math.min(...chosen.map((e) => ls.expertAccuracy[e]!));
    const bestOther = Math.max(-1, ...ls.expertAccuracy.flatMap((a, e) => (a === null || chosen.includes(e) ? [] : [a])));
    assert.ok(worstChosen >= bestOther, `layer ${ls.layer}: steered experts have the highest accuracies`);
  }
  assert.ok(steer.bias.every((b) => b[2] === 1.5));
});

test('derivations refuse empty results, bad parameters and layers that would lose too many experts', () => {
  const s = syntheticSummary({ numLayers: 2, numExperts: 8, topK: 2, seed: 1 });
  for (const l of s.layers) {
    l.activationCounts = l.activationCounts.map(() => 10);
    l.neverActivated = [];
  }
  assert.throws(() => deriveIntervention(s, { kind: 'prune-never-activated' }, 'base'), /base: "prune never-activated experts" selects no experts/);
  assert.throws(() => deriveIntervention(s, { kind: 'prune-below-count', count: 0 }), /count must be a positive integer/);
  assert.throws(() => deriveIntervention(s, { kind: 'steer-top-accuracy', fraction: 1.5, bias: 1 }), /fraction must be in \(0, 1\]/);
  assert.throws(() => deriveIntervention(s, { kind: 'prune-below-count', count: 11 }), /would keep 0 of 8 experts/);
  assert.deepEqual(topAccuracyExperts({ expertAccuracy: [0.5, null, 0.9, 0.9], expertAccuracyCount: [4, 0, 2, 7] }, 0.5), [3, 2]);
});

test('a workspace summary.json with an intervention outside the model is refused, naming the field', async () => {
  const { checkSummary } = await import('../../src/eval/summaryCheck');
  const synthetic = syntheticSummary({ numLayers: 2, numExperts: 8, topK: 2, seed: 1 });
  const s = { ...synthetic, layers: synthetic.layers.map(({ coactivation: _unused, ...l }) => l) };
  checkSummary({ ...s, intervention: { mask: [[1, 7]], bias: [[0, 2, -1.5]] } }, 'summary.json');
  assert.throws(
    () => checkSummary({ ...s, intervention: { mask: [[2, 0]], bias: [] } }, 'summary.json'),
    /summary\.json: field "intervention\.mask\[0\]" is \[2,0\], not a \[layer, expert\] pair of this model/,
  );
  assert.throws(() => checkSummary({ ...s, intervention: { mask: [], bias: [[0, 1, null]] } }, 'summary.json'), /field "intervention\.bias\[0\]"/);
  assert.throws(() => checkSummary({ ...s, intervention: { mask: 'all' } }, 'summary.json'), /field "intervention" is not \{mask/);
});

test('validation: every case of test/support/intervention-cases.json, which the PyTorch worker runs too', () => {
  const table = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'support', 'intervention-cases.json'), 'utf8')) as {
    shape: { numLayers: number; numExperts: number; topK: number };
    cases: { name: string; intervention: unknown; error: string | null }[];
  };
  assert.ok(table.cases.length >= 10);
  for (const c of table.cases) {
    const run = () => validateIntervention(c.intervention as RouterIntervention, table.shape, 'S');
    if (c.error === null) assert.doesNotThrow(run, c.name);
    else assert.throws(run, (e: unknown) => e instanceof InterventionError && e.message === c.error, c.name);
  }
});
