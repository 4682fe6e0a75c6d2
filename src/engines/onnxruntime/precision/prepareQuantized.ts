/**
 * Writes an int8 / int4 graph cache's weights: the experts block-quantised ([E, 2I, H] fc1, [E, H, I] fc2;
 * fc1's gate and up rows laid out for the bit width's expert kernel, EXPERT_KERNEL), the attention and
 * dense projections (and lm_head) for MatMulNBits, and everything else (embedding, norms, the router:
 * routing is what this tool shows) in float32 through prepareWeights.
 *
 * Streamed: the calling thread reads one expert (or one projection) at a time and hands it to the
 * quantisation workers (quantizePool.ts), with a few in flight, so the peak is a few of the checkpoint's
 * matrices whatever the model's size.
 */
import type { Checkpoint } from '../checkpoint';
import type { ExternalRef } from '../formats/onnxWriter';
import { AppendFile, prepareWeights, expertTensorName, nonFiniteWeight, type PreparedWeights } from '../weights';
import { blockSizeFor, type QuantBits, type QuantizedMatrix } from './quantize';
import { QuantizePool, owned, type QuantizeOutcome } from './quantizePool';
import { defaultThreads } from '../weightAnalysis/pool';
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

/**
 * How each bit width's experts run. int8: one MatMulNBits pair per expert at accuracy_level 4 (int8
 * compute, the fastest: graphHooks.ts); ONNX Runtime prepacks them at session creation, which int8's
 * memory allows and every load pays in time. int4: com.microsoft.QMoE, which runs without ONNX Runtime's
 * prepacking (the session disables it, runtime.ts) and so holds the least memory: int4 is the precision
 * for small machines, and MatMulNBits' 4-bit prepacking would put it above 5 GiB on OLMoE-1B-7B
 * (measured; BENCHMARKS.md).
 */
export type ExpertKernel = 'matmulnbits' | 'qmoe';
export const EXPERT_KERNEL: Record<QuantBits, ExpertKernel> = { 8: 'matmulnbits', 4: 'qmoe' };

export interface QuantizedExpertRefs {
  kernel: ExpertKernel;
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

/**
 * Jobs in flight beyond the workers' own: the reader keeps every worker busy while it waits for the oldest
 * result, and no more than a few experts' float32 copies are alive at once.
 */
const QUEUE_AHEAD = 2;

export async function prepareQuantizedWeights(
  ckpt: Checkpoint,
  dir: string,
  bits: QuantBits,
  log: (m: string) => void = () => {},
  threads = defaultThreads(),
): Promise<QuantizedWeights> {
  const projections = quantizedProjectionNames(ckpt);
  const expertBlock = expertBlockSize(ckpt, bits);
  const floats = prepareWeights(ckpt, dir, 'float32', 'swiglu-interleaved', { exclude: new Set(projections.keys()), experts: false });
  const pbits = PROJECTION_BITS[bits];
  const pool = new QuantizePool(threads);
  // Results are taken oldest first, so the files are written in submission order whatever finishes first.
  const inFlight: {
    outcome: Promise<QuantizeOutcome>;
    names: (part: number, index: number) => { name: string; file: string; index: number };
    write: (r: QuantizedMatrix[]) => void;
  }[] = [];
  const drain = async (limit: number) => {
    while (inFlight.length > limit) {
      const job = inFlight.shift()!;
      const outcome = await job.outcome;
      if ('nonFinite' in outcome) {
        const where = job.names(outcome.nonFinite.part, outcome.nonFinite.index);
        throw nonFiniteWeight(where.name, where.file, where.index, outcome.nonFinite.value);
      }
      job.write(outcome.results);
    }
  };
  const ahead = Math.max(1, threads) + QUEUE_AHEAD;
  const opened: AppendFile[] = [];
  const open = (name: string) => {
    const f = new AppendFile(dir, name);
    opened.push(f);
    return f;
  };

  try {
    const qweights = open(`q${bits}-weights.bin`);
    const linearRefs = new Map<string, QuantizedLinearRef>();
    for (const [name, { N, K }] of projections) {
      const block = blockSizeFor(K, pbits)!;
      inFlight.push({
        outcome: pool.quantize([{ values: owned(ckpt.readFloat32(name)), rows: N, K, bits: pbits, block }]),
        names: (_part, index) => ({ name, file: ckpt.tensor(name).file, index }),
        write: ([q]) => linearRefs.set(name, { packed: qweights.append(q.packed), scales: qweights.append(bytesOf(q.scales)), N, K, block, bits: pbits }),
      });
      await drain(ahead);
    }
    await drain(0);
    qweights.close();

    const { numExperts: E, hiddenSize: H, expertIntermediate: I } = ckpt.arch;
    const files = {
      fc1: open(`q${bits}-experts-fc1.bin`),
      fc1Scales: open(`q${bits}-experts-fc1-scales.bin`),
      fc2: open(`q${bits}-experts-fc2.bin`),
      fc2Scales: open(`q${bits}-experts-fc2-scales.bin`),
    };
    const perLayer: QuantizedExpertRefs[] = [];
    const kernel = EXPERT_KERNEL[bits];
    const offsets = () => ({ fc1: files.fc1.offset, fc1Scales: files.fc1Scales.offset, fc2: files.fc2.offset, fc2Scales: files.fc2Scales.offset });
    const ref = (f: AppendFile, from: number): ExternalRef => ({ location: f.name, offset: from, length: f.offset - from });
    // A layer's references are taken as its first and last experts are written (in order), so the workers
    // never wait for a layer boundary.
    let start = offsets();
    for (let l = 0; l < ckpt.arch.numLayers; l++) {
      for (let e = 0; e < E; e++) {
        // bf16 experts go to the workers as they are stored (decoded there); others as float32.
        const x = ckpt.readExpertBf16(l, e) ?? ckpt.readExpert(l, e);
        const gateUp = layoutGateUp(x.gate, x.up, I, H, kernel);
        inFlight.push({
          outcome: pool.quantize([
            { values: gateUp, rows: 2 * I, K: H, bits, block: expertBlock },
            { values: owned(x.down), rows: H, K: I, bits, block: expertBlock },
          ]),
          names: (part, index) => {
            const row = Math.floor(index / H);
            const which = part === 1 ? 'down' : (kernel === 'matmulnbits' ? row >= I : row % 2 === 1) ? 'up' : 'gate';
            const within = part === 1 ? index : (kernel === 'matmulnbits' ? row % I : row >> 1) * H + (index % H);
            const name = expertTensorName(ckpt, l, e, which);
            return { name, file: ckpt.has(name) ? ckpt.tensor(name).file : ckpt.dir, index: within };
          },
          write: ([fc1, fc2]) => {
            if (e === 0) start = offsets();
            files.fc1.append(fc1.packed);
            files.fc1Scales.append(bytesOf(fc1.scales));
            files.fc2.append(fc2.packed);
            files.fc2Scales.append(bytesOf(fc2.scales));
            if (e < E - 1) return;
            perLayer[l] = {
              kernel,
              fc1: ref(files.fc1, start.fc1),
              fc1Scales: ref(files.fc1Scales, start.fc1Scales),
              fc2: ref(files.fc2, start.fc2),
              fc2Scales: ref(files.fc2Scales, start.fc2Scales),
              block: expertBlock,
            };
            log(`quantised the experts of layer ${l} to int${bits}`);
          },
        });
        await drain(ahead);
      }
    }
    await drain(0);
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
  } finally {
    // After a failure the jobs still in flight are abandoned: closing the pool rejects them, unawaited.
    for (const job of inFlight) job.outcome.catch(() => undefined);
    for (const f of opened) f.abandon();
    await pool.close();
  }
}

/**
 * fc1 of one expert in its kernel's layout: for MatMulNBits [gate rows; up rows], split after one product
 * (graphHooks.ts); for QMoE's fused SwiGLU gate and up rows interleaved (row 2r gate r, row 2r + 1 up r).
 */
function layoutGateUp<T extends Float32Array | Uint16Array>(gate: T, up: T, I: number, H: number, kernel: ExpertKernel): T {
  const out = (gate instanceof Uint16Array ? new Uint16Array(2 * I * H) : new Float32Array(2 * I * H)) as T;
  if (kernel === 'matmulnbits') {
    out.set(gate, 0);
    out.set(up, I * H);
  } else {
    for (let r = 0; r < I; r++) {
      out.set(gate.subarray(r * H, (r + 1) * H), 2 * r * H);
      out.set(up.subarray(r * H, (r + 1) * H), (2 * r + 1) * H);
    }
  }
  return out;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
