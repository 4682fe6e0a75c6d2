/**
 * Text encoding of non-negative integer count arrays, for batch deltas that are written to disk once per
 * batch of questions and summed later.
 *
 * Each number is a little-endian base-32 varint written in the base64url alphabet: characters 0-31 end a
 * number, 32-63 carry 5 bits and continue it, so counts below 32 cost one character and below 1024 two.
 * Two layouts, whichever is shorter for the array at hand:
 * - "d" + one varint per element (dense arrays, e.g. co-activation pairs over every prompt token);
 * - "s" + one entry per non-zero element only, zeros omitted (sparse arrays, e.g. anything at
 *   scope=answer). With gap = index - previous index - 1, a value of 1 (by far the commonest in sparse
 *   count arrays) is the single varint 2 * gap, any other value v the varints 2 * gap + 1 and v - 2.
 * JSON-safe without escaping, and independent of the array's length, which the decoder must be told.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const DIGIT: Int8Array = (() => {
  const d = new Int8Array(128).fill(-1);
  for (let i = 0; i < ALPHABET.length; i++) d[ALPHABET.charCodeAt(i)] = i;
  return d;
})();

function checkCount(v: number, index: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`count at index ${index} is not a non-negative integer: ${v}`);
}

function varintLength(v: number): number {
  let n = 1;
  while (v >= 32) {
    v = Math.floor(v / 32);
    n++;
  }
  return n;
}

function pushVarint(out: string[], v: number): void {
  // Arithmetic rather than bit operations: counts may exceed 2^31 over a full run.
  while (v >= 32) {
    out.push(ALPHABET[32 + (v % 32)]!);
    v = Math.floor(v / 32);
  }
  out.push(ALPHABET[v]!);
}

/** One encoder for both entry points: a whole array goes through encodeNonZeroCounts by its non-zero entries. */
export function encodeCounts(values: ArrayLike<number>): string {
  const indices: number[] = [];
  const nonZero: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    checkCount(v, i);
    if (v !== 0) {
      indices.push(i);
      nonZero.push(v);
    }
  }
  return encodeNonZeroCounts(values.length, indices, nonZero);
}

/**
 * encodeCounts of an array of `length` given by its non-zero entries (indices ascending): the same text, in
 * time proportional to the non-zero entries (a zero is one character in the dense layout, none in the sparse).
 */
export function encodeNonZeroCounts(length: number, indices: ArrayLike<number>, values: ArrayLike<number>): string {
  let denseLen = length;
  let sparseLen = 0;
  let prev = -1;
  for (let j = 0; j < indices.length; j++) {
    const i = indices[j]!;
    const v = values[j]!;
    checkCount(v, i);
    denseLen += varintLength(v) - 1;
    const gap = i - prev - 1;
    sparseLen += v === 1 ? varintLength(2 * gap) : varintLength(2 * gap + 1) + varintLength(v - 2);
    prev = i;
  }
  const out: string[] = [];
  if (sparseLen <= denseLen) {
    out.push('s');
    prev = -1;
    for (let j = 0; j < indices.length; j++) {
      const i = indices[j]!;
      const v = values[j]!;
      const gap = i - prev - 1;
      if (v === 1) {
        pushVarint(out, 2 * gap);
      } else {
        pushVarint(out, 2 * gap + 1);
        pushVarint(out, v - 2);
      }
      prev = i;
    }
  } else {
    out.push('d');
    let next = 0;
    for (let j = 0; j < indices.length; j++) {
      const i = indices[j]!;
      for (; next < i; next++) out.push(ALPHABET[0]!);
      pushVarint(out, values[j]!);
      next = i + 1;
    }
    for (; next < length; next++) out.push(ALPHABET[0]!);
  }
  return out.join('');
}

/** Inverse of encodeCounts; throws on anything malformed, since deltas are read back from files. */
export function decodeCounts(text: unknown, length: number, what: string): number[] {
  if (typeof text !== 'string' || text.length === 0) throw new Error(`${what}: expected an encoded count string`);
  const out = new Array<number>(length).fill(0);
  let pos = 1;
  const next = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= text.length) throw new Error(`${what}: truncated number`);
      const c = text.charCodeAt(pos++);
      const d = c < 128 ? DIGIT[c]! : -1;
      if (d < 0) throw new Error(`${what}: invalid character at ${pos - 1}`);
      value += (d & 31) * scale;
      if (d < 32) break;
      scale *= 32;
      if (scale > Number.MAX_SAFE_INTEGER) throw new Error(`${what}: number too large`);
    }
    if (!Number.isSafeInteger(value)) throw new Error(`${what}: number too large`);
    return value;
  };
  const layout = text[0];
  if (layout === 'd') {
    for (let i = 0; i < length; i++) out[i] = next();
    if (pos !== text.length) throw new Error(`${what}: more than ${length} values`);
  } else if (layout === 's') {
    let index = -1;
    while (pos < text.length) {
      const head = next();
      index += Math.floor(head / 2) + 1;
      const v = head % 2 === 0 ? 1 : next() + 2;
      if (index >= length) throw new Error(`${what}: index ${index} beyond length ${length}`);
      if (!Number.isSafeInteger(v)) throw new Error(`${what}: number too large`);
      out[index] = v;
    }
  } else {
    throw new Error(`${what}: unknown layout "${layout}"`);
  }
  return out;
}
