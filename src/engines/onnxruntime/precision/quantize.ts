/**
 * Symmetric block quantisation in the layout ONNX Runtime's com.microsoft.QMoE and MatMulNBits read:
 * each [rows, K] matrix (out rows, in columns, as checkpoints store them) is cut into blocks of `block`
 * consecutive columns; a block's scale is max|w| / qmax and its values are round(w / scale) + zero point
 * (128 for 8 bits, 8 for 4 bits), stored as uint8, two 4-bit values per byte with the even column in the
 * low nibble. Verified against ONNX Runtime 1.30's CPU kernels (test/integration/precision-kernels.test.ts).
 */
export type QuantBits = 4 | 8;

export interface QuantizedMatrix {
  /** [rows, K * bits / 8] bytes: for MatMulNBits the same bytes are read as [rows, K / block, block * bits / 8]. */
  packed: Uint8Array;
  /** [rows, K / block] float32. */
  scales: Float32Array;
}

/** Preferred block sizes: 4 bits need small blocks to keep outliers local; 8 bits lose little at 128. */
export const PREFERRED_BLOCK: Record<QuantBits, number> = { 4: 32, 8: 128 };

/**
 * The block size used for a reduction length K: the preferred size, halved until it divides K, never
 * below 16 (the smallest block both kernels take). Null when K is not a multiple of 16.
 */
export function blockSizeFor(K: number, bits: QuantBits): number | null {
  for (let b = PREFERRED_BLOCK[bits]; b >= 16; b /= 2) if (K % b === 0) return b;
  return null;
}

export function quantizeRows(values: Float32Array, rows: number, K: number, bits: QuantBits, block: number): QuantizedMatrix {
  if (values.length !== rows * K) throw new Error(`quantizeRows: ${values.length} values is not ${rows} x ${K}`);
  if (K % block !== 0) throw new Error(`quantizeRows: block ${block} does not divide K=${K}`);
  const packed = new Uint8Array((rows * K * bits) / 8);
  const out = new QuantizedWriter(packed, bits);
  const scales = new Float32Array((rows * K) / block);
  quantizeInto(values, 0, rows, K, bits, block, out, scales, 0);
  return { packed, scales };
}

/** Appends quantised rows into preallocated buffers (lets callers build [E, rows, ...] tensors expert by expert). */
export class QuantizedWriter {
  private pos = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly bits: QuantBits,
  ) {}
  /** Position in values written so far. */
  get written(): number {
    return this.pos;
  }
  /** Advances past `n` values written directly into `bytes`. */
  skip(n: number): void {
    this.pos += n;
  }
  push(u: number): void {
    if (this.bits === 8) this.bytes[this.pos] = u;
    else if ((this.pos & 1) === 0) this.bytes[this.pos >> 1] = u;
    else this.bytes[this.pos >> 1] |= u << 4;
    this.pos++;
  }
}

/**
 * Quantises `rows` rows of length K read from `values` starting at row `rowOffset`, pushing the codes to
 * `out` and the scales to `scales` from `scaleOffset`. Returns the next scale offset.
 */
export function quantizeInto(
  values: Float32Array,
  rowOffset: number,
  rows: number,
  K: number,
  bits: QuantBits,
  block: number,
  out: QuantizedWriter,
  scales: Float32Array,
  scaleOffset: number,
): number {
  // Codes written straight into the bytes, a block at a time: a branch or call per value made this the
  // slowest part of a build.
  const n = rows * K;
  const from = rowOffset * K;
  const start = out.written;
  if (bits === 4 && (start % 2 !== 0 || block % 2 !== 0)) throw new Error('quantizeInto: 4-bit codes start on a byte boundary');
  quantizeBlocks(values, from, n, block, bits, out.bytes, (start * bits) / 8, scales, scaleOffset);
  out.skip(n);
  return scaleOffset + n / block;
}

/** max|w| of values[from, from + block) (callers have refused non-finite weights). */
export function blockMax(values: Float32Array, from: number, block: number): number {
  let m = 0;
  for (let i = from; i < from + block; i++) {
    const a = Math.abs(values[i]);
    if (a > m) m = a;
  }
  return m;
}

/**
 * Quantises values[from, from + n) block by block into bytes from byte `pos` and scales from `si`
 * (one loop per bit width below: this sees every expert weight of the model, 6.4 billion for OLMoE-1B-7B).
 */
export function quantizeBlocks(
  values: Float32Array,
  from: number,
  n: number,
  block: number,
  bits: QuantBits,
  bytes: Uint8Array,
  pos: number,
  scales: Float32Array,
  si: number,
): void {
  const step = (block * bits) / 8;
  for (let b = from; b < from + n; b += block, pos += step) {
    const m = blockMax(values, b, block);
    scales[si++] = bits === 8 ? quantizeBlock8(values, b, block, m, bytes, pos) : quantizeBlock4(values, b, block, m, bytes, pos);
  }
}

/** Quantises values[b, b + block), whose max|w| is m, into bytes from pos; returns the block's scale. */
export function quantizeBlock8(values: Float32Array, b: number, block: number, m: number, bytes: Uint8Array, pos: number): number {
  // An all-zero block keeps scale 1: its codes are all the zero point, so it dequantises to exact zeros.
  const scale = m > 0 ? m / 127 : 1;
  const inv = 1 / scale;
  if (inv === Infinity) {
    // m so small that m / 127 underflowed: the plain definition (never seen outside a test).
    for (let i = b; i < b + block; i++) bytes[pos++] = Math.min(127, Math.max(-127, Math.round(values[i] * inv))) + 128;
    return scale;
  }
  for (let i = b; i < b + block; i++) {
    const x = values[i] * inv;
    // Math.round(x), exactly, without its cost: |x| <= 127 (plus rounding), so x + 128.5 > 0 and truncation
    // is floor; the sum's rounding can put the candidate one off, which the exact comparisons with c -/+ 0.5
    // (integers plus a half: representable) correct, ties going up as Math.round's do.
    let c = ((x + 128.5) | 0) - 128;
    if (x < c - 0.5) c--;
    else if (x >= c + 0.5) c++;
    if (c > 127) c = 127;
    else if (c < -127) c = -127;
    bytes[pos++] = c + 128;
  }
  return scale;
}

/** clamp(Math.round(x), -7, 7), exactly; for |x| <= 7 (plus rounding) the fast candidate as in quantizeBlock8. */
export function round4(x: number): number {
  let c: number;
  if (x > -8 && x < 8) {
    c = ((x + 8.5) | 0) - 8;
    if (x < c - 0.5) c--;
    else if (x >= c + 0.5) c++;
  } else c = Math.round(x); // an underflowed scale: inv infinite
  return c > 7 ? 7 : c < -7 ? -7 : c;
}

/** As quantizeBlock8 at 4 bits: two codes per byte, the even element in the low nibble (pos counts bytes). */
export function quantizeBlock4(values: Float32Array, b: number, block: number, m: number, bytes: Uint8Array, pos: number): number {
  const scale = m > 0 ? m / 7 : 1;
  const inv = 1 / scale;
  for (let i = b; i < b + block; i += 2) bytes[pos++] = (round4(values[i] * inv) + 8) | ((round4(values[i + 1] * inv) + 8) << 4);
  return scale;
}

/**
 * quantizeBlocks of bfloat16 weights given as their bit patterns, decoded block by block instead of
 * into a float32 copy first: max|w| is taken on the patterns (for finite values their order without the
 * sign bit is their magnitude's), and a block holding NaN or an infinity stops it. Returns the index of
 * the first non-finite value, or -1; the codes and scales are those quantizeBlocks gives on the decoded
 * values.
 */
export function quantizeBf16(halves: Uint16Array, block: number, bits: QuantBits, bytes: Uint8Array, scales: Float32Array): number {
  const decoded = new Float32Array(block + 1);
  const patterns = new Uint32Array(decoded.buffer);
  let pos = 0;
  let si = 0;
  for (let b = 0; b < halves.length; b += block) {
    let top = 0;
    for (let i = 0; i < block; i++) {
      const h = halves[b + i];
      patterns[i] = h << 16;
      if ((h & 0x7fff) > top) top = h & 0x7fff;
    }
    if (top >= 0x7f80) {
      for (let i = 0; i < block; i++) if ((halves[b + i] & 0x7f80) === 0x7f80) return b + i;
    }
    patterns[block] = top << 16;
    const m = decoded[block];
    if (bits === 8) {
      scales[si++] = quantizeBlock8(decoded, 0, block, m, bytes, pos);
      pos += block;
    } else {
      scales[si++] = quantizeBlock4(decoded, 0, block, m, bytes, pos);
      pos += block / 2;
    }
  }
  return -1;
}

/** The float values a quantised matrix stands for (tests and the error report). */
export function dequantizeRows(q: QuantizedMatrix, rows: number, K: number, bits: QuantBits, block: number): Float32Array {
  const zero = bits === 8 ? 128 : 8;
  const out = new Float32Array(rows * K);
  for (let i = 0; i < rows * K; i++) {
    const u = bits === 8 ? q.packed[i] : (q.packed[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = (u - zero) * q.scales[Math.floor(i / block)];
  }
  return out;
}
