import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FAMILIES } from '../../src/engines/onnxruntime/families';
import { MOE_FAMILIES } from '../../src/shared/protocol';

// The README's family table says which families the ONNX Runtime engine builds; this keeps it true.
test("the README's ONNX Runtime column lists exactly the families the engine builds", () => {
  const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
  const section = readme.split('\n## MoE families\n')[1]?.split('\n## ')[0];
  assert.ok(section, 'README has no "## MoE families" section');
  const yes: string[] = [];
  const listed: string[] = [];
  for (const line of section.split('\n')) {
    const cells = line
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
    const m = cells.length === 5 ? /^`([a-z0-9_]+)`/.exec(cells[0]) : null;
    if (!m) continue;
    listed.push(m[1]);
    if (cells[2] === 'yes') yes.push(m[1]);
  }
  assert.deepEqual([...listed].sort(), [...MOE_FAMILIES].sort(), 'the table lists every MoE family once');
  const built = FAMILIES.map((f) => f.name);
  assert.deepEqual([...yes].sort(), [...new Set(built)].sort());
});
