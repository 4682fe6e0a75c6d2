/** The typed-array conversions of BF16 and F32 safetensors bytes give the bits the per-element definition gives, at any byte offset. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toFloat32, bf16ToF32 } from '../../src/engines/onnxruntime/formats/dtypes';

test('BF16 and F32 bytes convert bit for bit (signs, subnormals, infinities, NaN), also from an odd byte offset', () => {
  const halves = [0x0000, 0x8000, 0x3f80, 0xbf80, 0x0001, 0x807f, 0x7f80, 0xff80, 0x7fc1, 0x4049, 0xc2f7, 0x1234];
  for (const offset of [0, 1]) {
    const bytes = new Uint8Array(offset + halves.length * 2);
    const view = new DataView(bytes.buffer);
    halves.forEach((h, i) => view.setUint16(offset + 2 * i, h, true));
    const out = toFloat32(bytes.subarray(offset), 'BF16');
    const bits = new Uint32Array(out.buffer);
    halves.forEach((h, i) => assert.equal(bits[i], (h << 16) >>> 0, `element ${i} (0x${h.toString(16)}) at offset ${offset}`));
    assert.equal(out[2], 1);
    assert.equal(out[3], -1);
    assert.equal(out[6], Infinity);
    assert.ok(Number.isNaN(out[8]));
    assert.equal(out[9], bf16ToF32(0x4049));
  }
  const values = Float32Array.from([0, -0, 1.5, -3.25e-38, 3.4e38, -Infinity, NaN, 1e-45]);
  for (const offset of [0, 3]) {
    const bytes = new Uint8Array(offset + values.length * 4);
    const view = new DataView(bytes.buffer);
    values.forEach((v, i) => view.setFloat32(offset + 4 * i, v, true));
    const out = toFloat32(bytes.subarray(offset), 'F32');
    assert.deepEqual(Array.from(new Uint32Array(out.buffer)), Array.from(new Uint32Array(values.buffer)), `offset ${offset}`);
  }
});
