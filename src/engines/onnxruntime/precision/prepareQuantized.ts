/**
 * Writes an int8 / int4 graph cache's weights: the experts block-quantised for com.microsoft.QMoE
 * ([E, 2I, H/pack] fc1 with gate and up rows interleaved for the CPU kernel's fused SwiGLU, [E, H, I/pack]
 * fc2), the attention and dense projections (and lm_head) for MatMulNBits, and everything else (embedding,
 * norms, the router: routing is what this tool shows) in float32 through prepareWeights.
 *
 * Streamed: one expert's (or one projection's) float32 copy at a time is held in memory, so the peak is
 * a few of the checkpoint's matrices whatever the model's size.
 */
import type { Checkpoint } from '../checkpoint';
import type { ExternalRef } from '../formats/onnxWriter';
import { AppendFile, prepareWeights, requireFiniteWeights, expertTensorName, type PreparedWeights } from '../weights';
import { blockSizeFor, quantizeInto, QuantizedWriter, type QuantBits } from './quantize';
import { EngineFailure } from '../../../shared/protocol';

export interface QuantizedLinearRef {
  packed: ExternalRef;
  scales: ExternalRef;
  /** Output features (rows of the checkpoint's [out, in] matrix). */
  N: number;
  /** Input features. */
  K: number;
  block: number;
  bits: QuantBits;
}

/**
 * Bits of the attention / shared-expert / lm_head projections at each expert precision. They are ~7% of
 * OLMoE's weights but sit upstream of every router (the first layer's router reads the embedding plus one
 * attention output): at int4 they stay 8-bit, which costs ~0.2 GB on OLMoE-1B-7B and keeps the router's
 * input close to fp32's.
 */
export const PROJECTION_BITS: Record<QuantBits, QuantBits> = { 8: 8, 4: 8 };

export interface QuantizedExpertRefs {
  fc1: ExternalRef;
  fc1Scales: ExternalRef;
  fc2: ExternalRef;
  fc2Scales: ExternalRef;
  block: number;
}

export interface QuantizedWeights extends PreparedWeights {
  bits: QuantBits;
  /** The quantised projection of a checkpoint tensor, or undefined when it stays float32. */
  linear(name: string): QuantizedLinearRef | undefined;
  quantizedExperts(layer: number): QuantizedExpertRefs;
}

/** The projections the decoder graph computes as Gemm and that are quantised: attention, shared expert, lm_head. */
export function quantizedProjectionNames(ckpt: Checkpoint): Map<string, { N: number; K: number }> {
  const a = ckpt.arch;
  const shapes = new Map(ckpt.expectedTensors().map((t) => [t.name, t.shape]));
  const out = new Map<string, { N: number; K: number }>();
  const add = (name: string | undefined) => {
    const shape = name ? shapes.get(name) : undefined;
    if (!name || !shape || shape.length !== 2 || shape[0] < 16) return;
    if (blockSizeFor(shape[1], 8) === null) return; // stays float32: no block size divides its input width
    out.set(name, { N: shape[0], K: shape[1] });
  };
  for (let l = 0; l < a.numLayers; l++) {
    const n = ckpt.names.layer(l);
    [n.q, n.k, n.v, n.o].forEach(add);
    if (n.shared) [n.shared.gate, n.shared.up, n.shared.down].forEach(add);
  }
  // A tied lm_head is the embedding, which the Gather reads in float32.
  if (ckpt.names.lmHead !== ckpt.names.embed) add(ckpt.names.lmHead);
  return out;
}

/** The one block size QMoE takes for both fc1 (K = hidden) and fc2 (K = expert intermediate). */
export function expertBlockSize(ckpt: Checkpoint, bits: QuantBits): number {
  const { hiddenSize: H, expertIntermediate: I } = ckpt.arch;
  const b = blockSizeFor(gcd(H, I), bits);
  if (b === null) {
    throw new EngineFailure(
      'bad-input',
      `${ckpt.dir}/config.json: int${bits} needs hidden_size (${H}) and the expert intermediate size (${I}) to share a factor of 16; use --precision fp32`,
    );
  }
  return b;
}

export function prepareQuantizedWeights(ckpt: Checkpoint, dir: string, bits: QuantBits, log: (m: string) => void = () => {}): QuantizedWeights {
  const projections = quantizedProjectionNames(ckpt);
  const expertBlock = expertBlockSize(ckpt, bits);
  const floats = prepareWeights(ckpt, dir, 'float32', 'swiglu-interleaved', { exclude: new Set(projections.keys()), experts: false });

  const qweights = new AppendFile(dir, `q${bits}-weights.bin`);
  const linearRefs = new Map<string, QuantizedLinearRef>();
  const pbits = PROJECTION_BITS[bits];
  for (const [name, { N, K }] of projections) {
    const values = ckpt.readFloat32(name);
    requireFiniteWeights(values, name, ckpt.tensor(name).file);
    const block = blockSizeFor(K, pbits)!;
    const packed = new Uint8Array((N * K * pbits) / 8);
    const scales = new Float32Array((N * K) / block);
    quantizeInto(values, 0, N, K, pbits, block, new QuantizedWriter(packed, pbits), scales, 0);
    linearRefs.set(name, { packed: qweights.append(packed), scales: qweights.append(bytesOf(scales)), N, K, block, bits: pbits });
  }
  qweights.close();

  const { numExperts: E, hiddenSize: H, expertIntermediate: I } = ckpt.arch;
  const files = {
    fc1: new AppendFile(dir, `q${bits}-experts-fc1.bin`),
    fc1Scales: new AppendFile(dir, `q${bits}-experts-fc1-scales.bin`),
    fc2: new AppendFile(dir, `q${bits}-experts-fc2.bin`),
    fc2Scales: new AppendFile(dir, `q${bits}-experts-fc2-scales.bin`),
  };
  const interleaved = new Float32Array(2 * I * H);
  const perLayer: QuantizedExpertRefs[] = [];
  for (let l = 0; l < ckpt.arch.numLayers; l++) {
    const start = { fc1: files.fc1.offset, fc1Scales: files.fc1Scales.offset, fc2: files.fc2.offset, fc2Scales: files.fc2Scales.offset };
    for (let e = 0; e < E; e++) {
      const x = ckpt.readExpert(l, e);
      for (const [part, values] of Object.entries(x)) requireFiniteWeights(values, expertTensorName(ckpt, l, e, part as keyof typeof x), ckpt.dir);
      for (let r = 0; r < I; r++) {
        interleaved.set(x.gate.subarray(r * H, (r + 1) * H), 2 * r * H);
        interleaved.set(x.up.subarray(r * H, (r + 1) * H), (2 * r + 1) * H);
      }
      appendQuantized(files.fc1, files.fc1Scales, interleaved, 2 * I, H, bits, expertBlock);
      appendQuantized(files.fc2, files.fc2Scales, x.down, H, I, bits, expertBlock);
    }
    const ref = (f: AppendFile, from: number): ExternalRef => ({ location: f.name, offset: from, length: f.offset - from });
    perLayer.push({
      fc1: ref(files.fc1, start.fc1),
      fc1Scales: ref(files.fc1Scales, start.fc1Scales),
      fc2: ref(files.fc2, start.fc2),
      fc2Scales: ref(files.fc2Scales, start.fc2Scales),
      block: expertBlock,
    });
    log(`quantised the experts of layer ${l} to int${bits}`);
  }
  let quantizedBytes = qweights.offset;
  for (const f of Object.values(files)) {
    f.close();
    quantizedBytes += f.offset;
  }
  return {
    ...floats,
    bits,
    convertedBytes: floats.convertedBytes + quantizedBytes,
    linear: (name) => linearRefs.get(name),
    quantizedExperts: (l) => perLayer[l],
  };
}

function appendQuantized(codes: AppendFile, scaleFile: AppendFile, values: Float32Array, rows: number, K: number, bits: QuantBits, block: number): void {
  const packed = new Uint8Array((rows * K * bits) / 8);
  const scales = new Float32Array((rows * K) / block);
  quantizeInto(values, 0, rows, K, bits, block, new QuantizedWriter(packed, bits), scales, 0);
  codes.append(packed);
  scaleFile.append(bytesOf(scales));
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
