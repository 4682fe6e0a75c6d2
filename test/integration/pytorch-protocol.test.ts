/**
 * protocol.ts is the single source of truth: the PyTorch worker's copy of its names
 * (python/moe_scope_worker/protocol.py) and the frames it writes must agree with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as fs from 'node:fs';
import {
  ENGINE_ERROR_CODES,
  ENGINE_METHODS,
  ENGINE_TO_HOST_TYPES,
  HOST_TO_ENGINE_TYPES,
  MODEL_INFO_FIELDS,
  MOE_FAMILIES,
  ROUTING_POSITIONS,
  everyMemberOf,
  type EngineErrorCode,
} from '../../src/shared/protocol';
import { PROTOCOL_NAMES_FILE, protocolNamesJson } from '../../src/shared/protocolNames';
import { FrameReader, decodeFrameBody, encodeFrame } from '../../src/engines/client/frames';
import { REPO_ROOT } from '../support/models';
import { testPython } from '../support/python';

const python = testPython();
const env = { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'python') };
const py = (code: string) => execFileSync(python, ['-c', code], { env, encoding: 'utf8', maxBuffer: 1 << 26 });

test(`${PROTOCOL_NAMES_FILE} is what protocol.ts generates (else: node scripts/protocol-names.mjs)`, () => {
  const onDisk = fs.readFileSync(path.join(REPO_ROOT, PROTOCOL_NAMES_FILE), 'utf8');
  assert.equal(onDisk, protocolNamesJson(), `${PROTOCOL_NAMES_FILE} is stale or edited by hand: run node scripts/protocol-names.mjs`);
});

test('the run-time lists hold every member of their union: a code declared but not listed does not compile', () => {
  // The compiler checks these lines (tsc over test/): a list missing a member is an error.
  // @ts-expect-error 'internal' and others are missing
  everyMemberOf<EngineErrorCode>()(['cancelled']);
  assert.ok(ENGINE_ERROR_CODES.includes('non-finite') && ENGINE_ERROR_CODES.includes('provider-unavailable'));
  assert.equal(new Set(ENGINE_ERROR_CODES).size, ENGINE_ERROR_CODES.length);
});

test("the worker's method names, error codes, message types, routingPositions, ModelInfo keys and families are protocol.ts's", () => {
  const names = JSON.parse(
    py(
      'import json; from moe_scope_worker import protocol as p; print(json.dumps({k: getattr(p, k) for k in ["METHODS", "SERVED_METHODS", "ERROR_CODES", "HOST_TO_ENGINE_TYPES", "ENGINE_TO_HOST_TYPES", "ROUTING_POSITIONS", "MODEL_INFO_FIELDS", "MOE_FAMILIES", "FAMILIES", "EXIT_LOCKED"]}))',
    ),
  ) as Record<string, string[]> & { MODEL_INFO_FIELDS: Record<string, string>; EXIT_LOCKED: number };
  assert.deepEqual(names.METHODS, [...ENGINE_METHODS]);
  assert.deepEqual(names.ERROR_CODES, [...ENGINE_ERROR_CODES]);
  assert.deepEqual(names.HOST_TO_ENGINE_TYPES, [...HOST_TO_ENGINE_TYPES]);
  assert.deepEqual(names.ENGINE_TO_HOST_TYPES, [...ENGINE_TO_HOST_TYPES]);
  assert.deepEqual(names.ROUTING_POSITIONS, [...ROUTING_POSITIONS]);
  assert.deepEqual(names.MODEL_INFO_FIELDS, { ...MODEL_INFO_FIELDS });
  assert.deepEqual(names.MOE_FAMILIES, [...MOE_FAMILIES]);
  assert.equal(names.EXIT_LOCKED, 75);
  for (const m of names.SERVED_METHODS) assert.ok((ENGINE_METHODS as readonly string[]).includes(m), m);
  for (const f of names.FAMILIES) assert.ok((MOE_FAMILIES as readonly string[]).includes(f), `the worker's family ${f} is not in MOE_FAMILIES`);
});

test('frames: typed arrays and views written by Python arrive as aligned typed arrays; host frames decode in Python', () => {
  const out = execFileSync(
    python,
    [
      '-c',
      `import sys, numpy as np
from moe_scope_worker import framing
shared = np.arange(10, dtype=np.float32) / 4
msg = {"type": "response", "id": 7, "ok": True, "result": {"a": np.array([1, 65535], dtype=np.uint16), "v": framing.View(shared, 3, 4), "w": framing.View(shared, 0, 2),
       "i": np.array([-5, 2**31 - 1], dtype=np.int32), "text": "caf\\u00e9 \\U0001d6fc", "n": [1.5, None]}}
sys.stdout.buffer.write(framing.encode(msg) + framing.encode({"type": "log", "level": "info", "message": "x"}))
back = framing.decode_body(sys.stdin.buffer.read()[4:])
assert back == {"type": "cancel", "id": 3}, back`,
    ],
    { env, input: encodeFrame({ type: 'cancel', id: 3 }), maxBuffer: 1 << 26 },
  );
  const got: unknown[] = [];
  const reader = new FrameReader((m) => got.push(m));
  // Byte by byte: frames split anywhere in the stream must still decode.
  for (let i = 0; i < out.length; i++) reader.push(Buffer.from(out.subarray(i, i + 1)));
  assert.equal(got.length, 2);
  const r = (got[0] as { result: Record<string, unknown> }).result;
  assert.ok(r.a instanceof Uint16Array && r.v instanceof Float32Array && r.i instanceof Int32Array);
  assert.deepEqual(Array.from(r.a as Uint16Array), [1, 65535]);
  assert.deepEqual(Array.from(r.v as Float32Array), [0.75, 1, 1.25, 1.5]);
  assert.deepEqual(Array.from(r.w as Float32Array), [0, 0.25]);
  assert.equal((r.v as Float32Array).buffer, (r.w as Float32Array).buffer, 'views share one buffer: no copy per item');
  assert.deepEqual(Array.from(r.i as Int32Array), [-5, 2 ** 31 - 1]);
  assert.equal(r.text, 'café 𝛼');
  assert.deepEqual(r.n, [1.5, null]);
  assert.deepEqual(got[1], { type: 'log', level: 'info', message: 'x' });
});

test('a frame whose buffer table overruns the frame is rejected, not read past its end', () => {
  const header = Buffer.from(JSON.stringify({ m: { x: { $b: 0 } }, b: [['float32', 0, 64]] }));
  const body = new Uint8Array(8 + header.length + 8);
  new DataView(body.buffer).setUint32(0, header.length, true);
  body.set(header, 4);
  assert.throws(() => decodeFrameBody(body), /overruns/);
});
