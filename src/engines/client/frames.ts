/**
 * Length-prefixed frames between the host and the PyTorch worker (python/moe_scope_worker/framing.py
 * documents the layout): a JSON header plus raw little-endian buffers, each at a multiple of 8, so typed
 * arrays arrive as views over the frame's bytes, never as JSON numbers.
 */

type TypedArray = Float32Array | Float64Array | Int32Array | Uint16Array | Uint8Array;
const CONSTRUCTORS = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  uint16: Uint16Array,
  uint8: Uint8Array,
} as const;
type DTypeName = keyof typeof CONSTRUCTORS;

const align8 = (n: number) => (n + 7) & ~7;

/** Encodes a message with no binary buffers (what the host sends: requests and cancels). */
export function encodeFrame(message: unknown): Buffer {
  const header = Buffer.from(JSON.stringify({ m: message, b: [] }), 'utf8');
  const total = align8(4 + header.length);
  const out = Buffer.alloc(4 + total);
  out.writeUInt32LE(total, 0);
  out.writeUInt32LE(header.length, 4);
  header.copy(out, 8);
  return out;
}

/** Decodes one frame body; typed arrays are views into `body`, which must start at an 8-aligned offset. */
export function decodeFrameBody(body: Uint8Array): unknown {
  if (body.byteOffset % 8 !== 0) throw new Error('frame body is not 8-byte aligned');
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const headerLength = view.getUint32(0, true);
  if (4 + headerLength > body.byteLength) throw new Error(`frame header of ${headerLength} bytes overruns a ${body.byteLength}-byte frame`);
  const header = JSON.parse(new TextDecoder().decode(body.subarray(4, 4 + headerLength))) as { m: unknown; b: [DTypeName, number, number][] };
  const start = body.byteOffset + align8(4 + headerLength);
  const arrays: TypedArray[] = header.b.map(([dtype, offset, length]) => {
    const C = CONSTRUCTORS[dtype];
    if (!C) throw new Error(`frame buffer of unknown dtype ${dtype}`);
    if (start + offset + length > body.byteOffset + body.byteLength) throw new Error('frame buffer overruns its frame');
    return new C(body.buffer as ArrayBuffer, start + offset, length / C.BYTES_PER_ELEMENT);
  });
  const walk = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') {
      const o = x as Record<string, unknown>;
      if (typeof o.$b === 'number') {
        const a = arrays[o.$b];
        return typeof o.o === 'number' ? a.subarray(o.o, o.o + (o.n as number)) : a;
      }
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(o)) out[k] = walk(o[k]);
      return out;
    }
    return x;
  };
  return walk(header.m);
}

/**
 * The fixed bytes the worker writes before anything else (framing.py WORKER_HELLO): whatever a wrapper
 * script or a site hook prints to stdout before the worker starts shows up in their place, and is refused
 * instead of being read as a frame length (the text "acti" is a 1.8 GB length).
 */
export const WORKER_HELLO = Buffer.from('\0MOE-SCOPE-WORKER/1\n', 'latin1');

/** The largest frame the host accepts (the worker refuses to write one this large: framing.MAX_FRAME). */
export const MAX_FRAME_BYTES = 1 << 30;

/** What a stream held instead of the worker's hello, shown so a person can tell where it came from. */
export function describeBytes(bytes: Buffer): string {
  const text = bytes.subarray(0, 80).toString('latin1');
  return JSON.stringify(text).slice(1, -1) + (bytes.length > 80 ? '...' : '');
}

/**
 * Splits a byte stream into frames; each body is copied once into its own aligned buffer. With `hello`,
 * the stream must start with those bytes, else push() throws (naming the bytes it found) before any frame
 * is read. A frame longer than maxFrameBytes is refused before it is buffered.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private helloPending: Buffer | null;

  constructor(
    private readonly onMessage: (m: unknown) => void,
    options: { hello?: Buffer; maxFrameBytes?: number; onHello?: () => void } = {},
  ) {
    this.helloPending = options.hello ?? null;
    this.maxFrameBytes = options.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.onHello = options.onHello;
  }

  private readonly maxFrameBytes: number;
  private readonly onHello?: () => void;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.helloPending) {
      const hello = this.helloPending;
      const have = this.peek(Math.min(this.buffered, hello.length)).subarray(0, Math.min(this.buffered, hello.length));
      if (!hello.subarray(0, have.length).equals(have))
        throw new Error(`the worker's output did not start with its hello; it started with "${describeBytes(this.peek(this.buffered).subarray(0, 200))}"`);
      if (this.buffered < hello.length) return;
      this.take(hello.length);
      this.helloPending = null;
      this.onHello?.();
    }
    for (;;) {
      if (this.buffered < 4) return;
      const head = this.peek(4);
      const length = head.readUInt32LE(0);
      if (length > this.maxFrameBytes) throw new Error(`a frame of ${length} bytes exceeds the ${this.maxFrameBytes}-byte frame limit`);
      if (this.buffered < 4 + length) return;
      this.take(4);
      // A fresh ArrayBuffer starts at offset 0: every typed-array view inside is aligned.
      const body = new Uint8Array(length);
      this.take(length, body);
      this.onMessage(decodeFrameBody(body));
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0].length >= n) return this.chunks[0];
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number, into?: Uint8Array): void {
    let pos = 0;
    while (pos < n) {
      const c = this.chunks[0];
      const k = Math.min(n - pos, c.length);
      if (into) into.set(c.subarray(0, k), pos);
      pos += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
  }
}
