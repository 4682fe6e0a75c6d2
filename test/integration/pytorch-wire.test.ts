/**
 * The PyTorch worker's tokenize and trace results have the keys protocol.ts declares for its wire
 * (WorkerTokenizeResult, WorkerTraceResult; python/moe_scope_worker/protocol_names.json): every required
 * key, and no key the host would not read. Read in the worker's own process, before the host adapts them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { WORKER_TOKENIZE_FIELDS, WORKER_TRACE_FIELDS } from '../../src/shared/protocol';
import { REPO_ROOT, makeModel } from '../support/models';
import { testPython } from '../support/python';

function checkKeys(what: string, keys: string[], fields: Readonly<Record<string, 'optional' | 'required'>>): void {
  for (const [key, kind] of Object.entries(fields)) if (kind === 'required') assert.ok(keys.includes(key), `${what}: the worker leaves out ${key}`);
  for (const key of keys) assert.ok(key in fields, `${what}: the worker sends ${key}, which protocol.ts does not declare`);
}

test("the PyTorch worker's tokenize and trace results have protocol.ts's wire keys", () => {
  const dir = makeModel({ family: 'olmoe' });
  const code = `import json, sys
from moe_scope_worker.engine import Engine
e = Engine(lambda level, message: None)
e.load(sys.argv[1], {"executionProvider": "cpu"})
opts = {"includeProbs": False, "includeLastLogits": True}
print(json.dumps({"tokenize": sorted(e.tokenize(["Answer: A"])),
  "traceText": sorted(e.trace({"input": {"text": "Answer:"}, "options": opts})),
  "traceIds": sorted(e.trace({"input": {"ids": [1, 2, 3]}, "options": opts}))}))`;
  const out = execFileSync(testPython(), ['-c', code, dir], { env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'python') }, encoding: 'utf8' });
  const keys = JSON.parse(out.trim().split('\n').pop()!) as Record<'tokenize' | 'traceText' | 'traceIds', string[]>;
  checkKeys('tokenize', keys.tokenize, WORKER_TOKENIZE_FIELDS);
  checkKeys('trace of a text', keys.traceText, WORKER_TRACE_FIELDS);
  checkKeys('trace of ids', keys.traceIds, WORKER_TRACE_FIELDS);
  assert.ok(keys.traceText.includes('offsets') && keys.traceIds.includes('tokenTexts'), 'a text trace sends offsets, an ids trace token texts');
});
