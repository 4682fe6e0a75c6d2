// Writes python/moe_scope_worker/protocol_names.json from src/shared/protocol.ts (via protocolNames.ts).
// Run after changing a method, error code, message type, ModelInfo key, family or exit code there;
// test/unit/pytorch-protocol.test.ts fails until the file is current. `--check` only compares.
import * as esbuild from 'esbuild';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';

const built = await esbuild.build({
  entryPoints: ['src/shared/protocolNames.ts'],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  write: false,
  logLevel: 'warning',
});
const module = { exports: {} };
new Function('module', 'exports', 'require', built.outputFiles[0].text)(module, module.exports, createRequire(import.meta.url));
const { protocolNamesJson, PROTOCOL_NAMES_FILE } = module.exports;
const text = protocolNamesJson();
if (process.argv.includes('--check')) {
  const current = existsSync(PROTOCOL_NAMES_FILE) ? readFileSync(PROTOCOL_NAMES_FILE, 'utf8') : '';
  if (current !== text) {
    console.error(`${PROTOCOL_NAMES_FILE} is out of date: run node scripts/protocol-names.mjs`);
    process.exit(1);
  }
} else {
  writeFileSync(PROTOCOL_NAMES_FILE, text);
  console.log(`wrote ${PROTOCOL_NAMES_FILE}`);
}
