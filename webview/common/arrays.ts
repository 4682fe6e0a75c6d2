/**
 * Typed arrays survive VS Code's postMessage, but a JSON round trip (older hosts, tests, saved state)
 * turns them into plain arrays or {"0":..} objects. These helpers accept any of those shapes, and pack
 * typed arrays as base64 for vscode.setState (JSON-only) without blowing up the state size.
 */
import type { Routing, TraceResult } from '../../src/shared/protocol';

type NumericArrayCtor<T> = { new (n: number): T; new (values: ArrayLike<number>): T; from(values: ArrayLike<number>): T };

function coerce<T extends ArrayLike<number>>(value: unknown, Ctor: NumericArrayCtor<T>): T {
  if (value instanceof (Ctor as unknown as typeof Float32Array)) return value as unknown as T;
  if (ArrayBuffer.isView(value)) return Ctor.from(value as unknown as ArrayLike<number>);
  if (Array.isArray(value)) return Ctor.from(value);
  if (value && typeof value === 'object') {
    const o = value as Record<string, number>;
    const n = Object.keys(o).length;
    const out = new Ctor(n);
    for (let i = 0; i < n; i++) (out as unknown as number[])[i] = o[i] ?? 0;
    return out;
  }
  return new Ctor(0);
}

export function coerceRouting(r: Routing): Routing {
  return {
    numLayers: r.numLayers,
    numTokens: r.numTokens,
    numExperts: r.numExperts,
    topK: r.topK,
    probs: r.probs ? coerce(r.probs, Float32Array) : undefined,
    topExperts: coerce(r.topExperts, Uint16Array),
    topWeights: coerce(r.topWeights, Float32Array),
    entropy: coerce(r.entropy, Float32Array),
  };
}

export function coerceTraceResult(t: TraceResult): TraceResult {
  return { ...t, routing: coerceRouting(t.routing) };
}

// --- base64 packing for setState -----------------------------------------------------------------

function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode.apply(null, Array.from(bytes.subarray(i, i + chunk)));
  }
  return btoa(s);
}

function base64ToBytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export interface PackedArray {
  kind: 'f32' | 'u16';
  b64: string;
}

export function packArray(a: Float32Array | Uint16Array): PackedArray {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return { kind: a instanceof Float32Array ? 'f32' : 'u16', b64: bytesToBase64(bytes) };
}

export function unpackArray(p: PackedArray): Float32Array | Uint16Array {
  const bytes = base64ToBytes(p.b64);
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return p.kind === 'f32' ? new Float32Array(buf) : new Uint16Array(buf);
}

export type PackedRouting = Omit<Routing, 'probs' | 'topExperts' | 'topWeights' | 'entropy'> & {
  probs?: PackedArray;
  /** True when the trace had full gate probabilities but they were too large to keep in the state. */
  probsOmitted?: boolean;
  topExperts: PackedArray;
  topWeights: PackedArray;
  entropy: PackedArray;
};

/** Full gate distributions are large ([L][T][E] floats); above this many values they are not persisted. */
export const MAX_PERSISTED_PROBS = 1 << 18;

export function packRouting(r: Routing): PackedRouting {
  return {
    numLayers: r.numLayers,
    numTokens: r.numTokens,
    numExperts: r.numExperts,
    topK: r.topK,
    probs: r.probs && r.probs.length <= MAX_PERSISTED_PROBS ? packArray(r.probs) : undefined,
    probsOmitted: !!r.probs && r.probs.length > MAX_PERSISTED_PROBS,
    topExperts: packArray(r.topExperts),
    topWeights: packArray(r.topWeights),
    entropy: packArray(r.entropy),
  };
}

export function unpackRouting(p: PackedRouting): Routing {
  return {
    numLayers: p.numLayers,
    numTokens: p.numTokens,
    numExperts: p.numExperts,
    topK: p.topK,
    probs: p.probs ? (unpackArray(p.probs) as Float32Array) : undefined,
    topExperts: unpackArray(p.topExperts) as Uint16Array,
    topWeights: unpackArray(p.topWeights) as Float32Array,
    entropy: unpackArray(p.entropy) as Float32Array,
  };
}
