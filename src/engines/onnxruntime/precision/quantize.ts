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
  const qmax = bits === 8 ? 127 : 7;
  const zero = bits === 8 ? 128 : 8;
  let si = scaleOffset;
  for (let r = rowOffset; r < rowOffset + rows; r++) {
    const base = r * K;
    for (let b = 0; b < K; b += block) {
      let m = 0;
      for (let i = 0; i < block; i++) {
        const a = Math.abs(values[base + b + i]);
        if (a > m) m = a;
      }
      // An all-zero block keeps scale 1: its codes are all the zero point, so it dequantises to exact zeros.
      const scale = m > 0 ? m / qmax : 1;
      const inv = 1 / scale;
      scales[si++] = scale;
      // Written straight into the bytes (no call per value: this loop sees every weight of the model).
      const bytes = out.bytes;
      let pos = out.written;
      for (let i = 0; i < block; i++, pos++) {
        let v = Math.round(values[base + b + i] * inv);
        if (v > qmax) v = qmax;
        else if (v < -qmax) v = -qmax;
        const u = v + zero;
        if (bits === 8) bytes[pos] = u;
        else if ((pos & 1) === 0) bytes[pos >> 1] = u;
        else bytes[pos >> 1] |= u << 4;
      }
      out.skip(block);
    }
  }
  return si;
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
