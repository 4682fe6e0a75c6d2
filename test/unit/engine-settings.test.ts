/**
 * The engine names live once, in protocol.ts (ENGINE_KINDS, ENGINE_SETTINGS): the setting moeScope.engine in
 * package.json, --engine on the command line and the sweep spec's engines all accept exactly those.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENGINE_KINDS, ENGINE_SETTINGS } from '../../src/shared/protocol';
import { engineSettingOption, UsageError } from '../../src/cli/command';

test("package.json's moeScope.engine enum is the protocol's ENGINE_SETTINGS", () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes: {
      configuration: { properties: Record<string, { enum?: string[]; default?: string }> } | { properties: Record<string, { enum?: string[] }> }[];
    };
  };
  const sections = Array.isArray(manifest.contributes.configuration) ? manifest.contributes.configuration : [manifest.contributes.configuration];
  const setting = sections.map((s) => s.properties['moeScope.engine']).find((p) => p !== undefined);
  assert.ok(setting, 'package.json declares moeScope.engine');
  assert.deepEqual(setting.enum, [...ENGINE_SETTINGS]);
});

test('--engine accepts the protocol engine settings and refuses anything else, naming them', () => {
  for (const s of ENGINE_SETTINGS) assert.equal(engineSettingOption(s), s);
  assert.deepEqual([...ENGINE_SETTINGS], ['auto', ...ENGINE_KINDS]);
  assert.throws(
    () => engineSettingOption('torch'),
    (e: Error) => e instanceof UsageError && e.message === '--engine must be onnxruntime, pytorch or auto, not "torch"',
  );
});
