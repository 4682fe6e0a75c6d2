/**
 * The ONNX Runtime engine's half of the config parity test: every case of test/support/config-cases.json read
 * by families.ts gives the ModelInfo values (or the refusal) the case names; python/tests/test_config_fields.py
 * runs the same file through the PyTorch engine. The table both engines read is src/shared/configFields.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FAMILIES, familyFor, ConfigError, type HfConfig } from '../../src/engines/onnxruntime/families';
import { rescalesToOne, routingDescription, sharedExpertCount } from '../../src/engines/onnxruntime/familyFeatures';
import { CONFIG_DEFAULTS, CONFIG_FIELD_TYPES, configDefault, configFieldsProblem } from '../../src/shared/configFields';
import { MOE_FAMILIES } from '../../src/shared/protocol';

interface ConfigCase {
  name: string;
  base: string;
  config: HfConfig;
  expect?: Record<string, unknown>;
  error?: string;
}

const CASES_FILE = path.join(__dirname, '..', '..', 'test', 'support', 'config-cases.json');
const { bases, cases } = JSON.parse(fs.readFileSync(CASES_FILE, 'utf8')) as { bases: Record<string, HfConfig>; cases: ConfigCase[] };
const FILE = 'config.json';

function modelInfoOf(config: HfConfig): Record<string, unknown> {
  const a = familyFor(config, FILE).architecture(config, FILE);
  const routing = routingDescription(a);
  return {
    kind: routing.kind,
    normTopKProb: rescalesToOne(a),
    sharedExperts: sharedExpertCount(a),
    routedScalingFactor: routing.routedScalingFactor,
    maxPositions: a.maxPositions,
    numExperts: a.numExperts,
    topK: a.topK,
  };
}

test('the case file is not empty and every case names a base it has', () => {
  assert.ok(cases.length >= 10, `${CASES_FILE}: ${cases.length} cases`);
  for (const c of cases) assert.ok(bases[c.base], `${c.name}: no base ${c.base}`);
});

for (const c of cases) {
  test(`config parity: ${c.name}`, () => {
    const config = { ...bases[c.base], ...c.config };
    if (c.error !== undefined) {
      assert.throws(
        () => modelInfoOf(config),
        (e: Error) => {
          assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
          assert.equal(e.message, `${FILE}: ${c.error}`);
          return true;
        },
      );
      return;
    }
    const got = modelInfoOf(config);
    for (const [key, want] of Object.entries(c.expect ?? {})) assert.deepEqual(got[key], want, `${c.name}: ${key}`);
  });
}

test('the table names only families and fields that exist, and each default has the field type', () => {
  for (const [field, perFamily] of Object.entries(CONFIG_DEFAULTS)) {
    const type = CONFIG_FIELD_TYPES[field as keyof typeof CONFIG_FIELD_TYPES];
    for (const [family, value] of Object.entries(perFamily ?? {})) {
      assert.ok((MOE_FAMILIES as readonly string[]).includes(family), `${field}: ${family} is not a family`);
      if (value !== null) assert.equal(configFieldsProblem({ [field]: value }, family as never), null, `${field} default for ${family} is not ${type}`);
    }
  }
});

test('every family the ONNX Runtime engine builds has the defaults common() reads in the table', () => {
  for (const f of FAMILIES) {
    for (const field of ['max_position_embeddings', 'tie_word_embeddings'] as const)
      assert.notEqual(configDefault(f.name, field), undefined, `src/shared/configFields.ts: CONFIG_DEFAULTS.${field} lacks ${f.name}`);
  }
});
