/**
 * Which weight precision the ONNX Runtime engine uses: what each execution provider can run, how much
 * memory each precision needs for a checkpoint, and `auto` (the most precise that fits the memory available).
 * A precision that cannot run is refused naming those that can; one that does not fit is refused before
 * anything is loaded, naming the precision that would.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Checkpoint } from '../checkpoint';
import { blockSizeFor, type QuantBits } from './quantize';
import { quantizedProjectionNames, PROJECTION_BITS, EXPERT_KERNEL } from './prepareQuantized';
import { formatBytes } from '../webgpu';
import { EngineFailure, type ExecutionProvider, type PrecisionSetting, type WeightPrecision } from '../../../shared/protocol';

/** Most precise first: the order `auto` tries. */
export const ONNX_PRECISIONS: Record<ExecutionProvider, readonly WeightPrecision[]> = {
  cpu: ['fp32', 'int8', 'int4'],
  webgpu: ['fp32', 'fp16'],
  cuda: ['fp16'],
  mps: [],
};

export function quantBitsOf(p: WeightPrecision): QuantBits | null {
  return p === 'int8' ? 8 : p === 'int4' ? 4 : null;
}

/** Refusal text: what this provider runs, and where the asked-for precision does run. */
export function unsupportedPrecisionMessage(provider: ExecutionProvider, precision: WeightPrecision): string {
  const where: Record<WeightPrecision, string> = {
    fp32: 'the CPU or WebGPU (--provider cpu / webgpu)',
    fp16: 'WebGPU or CUDA (--provider webgpu / cuda)',
    bf16: 'the PyTorch engine (--engine pytorch)',
    int8: 'the ONNX Runtime CPU provider (--provider cpu)',
    int4: 'the ONNX Runtime CPU provider (--provider cpu)',
  };
  return `precision ${precision} cannot run on ONNX Runtime's ${provider.toUpperCase()} provider, which runs ${ONNX_PRECISIONS[provider].join(', ')}; ${precision} runs on ${where[precision]}`;
}

/**
 * Bytes of weights the graph holds at a precision: experts and the quantised projections at bits/8 per
 * weight plus one float32 scale per block (and, for prepacked experts, the packed layout's per-block
 * extras); everything else (embedding, norms, router) float32.
 */
export function weightBytesAt(ckpt: Checkpoint, precision: WeightPrecision): number {
  const bits = quantBitsOf(precision);
  const total = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const tensors = ckpt.expectedTensors();
  if (bits === null) return tensors.reduce((a, t) => a + total(t.shape) * (precision === 'fp32' ? 4 : 2), 0);
  const projections = quantizedProjectionNames(ckpt);
  const { numLayers: L, numExperts: E, hiddenSize: H, expertIntermediate: I } = ckpt.arch;
  const expertBlock = blockSizeFor(gcd(H, I), bits) ?? 16;
  const quant = (n: number, block: number) => (n * bits) / 8 + (n / block) * 4;
  let bytes = L * (quant(E * 2 * I * H, expertBlock) + quant(E * H * I, expertBlock));
  const expertElements = L * E * 3 * I * H;
  // MatMulNBits experts (int8) are prepacked at session creation: the packed layout adds a float32 scale and
  // a block sum per block (measured on OLMoE-1B-7B: peak 0.8 GiB above the 6.9 GiB of cache; BENCHMARKS.md).
  if (EXPERT_KERNEL[bits] === 'matmulnbits') bytes += (expertElements / expertBlock) * 8;
  let floatElements = tensors.reduce((a, t) => a + total(t.shape), 0) - expertElements;
  const pbits = PROJECTION_BITS[bits];
  for (const { N, K } of projections.values()) {
    bytes += (N * K * pbits) / 8 + ((N * K) / blockSizeFor(K, pbits)!) * 4;
    floatElements -= N * K;
  }
  return bytes + floatElements * 4;
}

/** Process memory beyond the weights: activations at 2048 tokens, ONNX Runtime's arenas, Node itself. */
export function runtimeOverheadBytes(ckpt: Checkpoint): number {
  const a = ckpt.arch;
  const tokens = Math.min(a.maxPositions, 2048);
  return 400 * 2 ** 20 + tokens * (a.vocabSize + 8 * a.hiddenSize + 2 * a.numExperts * a.numLayers) * 4;
}

/** MemAvailable (Linux), else free memory; MOE_SCOPE_AVAILABLE_MEMORY (bytes) overrides it (tests, benchmarks). */
export function availableMemory(): { bytes: number; how: string } {
  const env = process.env.MOE_SCOPE_AVAILABLE_MEMORY;
  if (env !== undefined && env !== '') {
    const n = Number(env);
    if (!Number.isFinite(n) || n <= 0) throw new EngineFailure('bad-input', `MOE_SCOPE_AVAILABLE_MEMORY must be a positive number of bytes, not "${env}"`);
    return { bytes: n, how: 'available (MOE_SCOPE_AVAILABLE_MEMORY)' };
  }
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return { bytes: Number(m[1]) * 1024, how: 'available (MemAvailable)' };
  } catch {
    // not Linux
  }
  return { bytes: os.freemem(), how: 'free' };
}

export interface PrecisionChoice {
  precision: WeightPrecision;
  why: string;
  /** Estimated process memory at that precision. */
  needBytes: number;
}

/**
 * The precision for a provider. `requested` not runnable there: refused naming what is. Explicit but
 * too large for the memory: refused naming the most precise one that fits. `auto`: the most precise that fits
 * (the least precise when none does, with the shortfall said).
 */
export function choosePrecision(ckpt: Checkpoint, provider: ExecutionProvider, requested: PrecisionSetting, memory = availableMemory()): PrecisionChoice {
  const options = ONNX_PRECISIONS[provider];
  const need = (p: WeightPrecision) => weightBytesAt(ckpt, p) + runtimeOverheadBytes(ckpt);
  // GPU providers hold the weights in device memory, which the WebGPU adapter check sizes.
  const hostMemoryBound = provider === 'cpu';
  const fits = (p: WeightPrecision) => !hostMemoryBound || need(p) <= memory.bytes;
  const have = `${formatBytes(memory.bytes)} ${memory.how}`;
  if (requested !== 'auto') {
    if (!options.includes(requested)) throw new EngineFailure('bad-input', unsupportedPrecisionMessage(provider, requested));
    if (!fits(requested)) {
      const smaller = options.find((p) => p !== requested && fits(p));
      throw new EngineFailure(
        'bad-model',
        `${ckpt.dir}: at ${requested} the model needs about ${formatBytes(need(requested))} of memory and ${have}; ` +
          (smaller
            ? `${smaller} would fit (about ${formatBytes(need(smaller))}): use --precision ${smaller}`
            : `no precision ONNX Runtime's ${provider.toUpperCase()} provider runs fits (${options.map((p) => `${p} about ${formatBytes(need(p))}`).join(', ')})`),
      );
    }
    return { precision: requested, why: 'requested', needBytes: need(requested) };
  }
  const first = options[0];
  if (!hostMemoryBound) return { precision: first, why: `auto: ${provider.toUpperCase()} runs ${options.join(', ')}`, needBytes: need(first) };
  const chosen = options.find(fits);
  if (chosen === first) return { precision: first, why: `auto: ${first} fits (about ${formatBytes(need(first))}, ${have})`, needBytes: need(first) };
  if (chosen)
    return {
      precision: chosen,
      why: `auto: ${options
        .slice(0, options.indexOf(chosen))
        .map((p) => `${p} needs about ${formatBytes(need(p))}`)
        .join(', ')}, ${have}; ${chosen} fits (about ${formatBytes(need(chosen))})`,
      needBytes: need(chosen),
    };
  const last = options[options.length - 1];
  return {
    precision: last,
    why: `auto: no precision fits ${have} (${last} needs about ${formatBytes(need(last))}); trying ${last}, the smallest`,
    needBytes: need(last),
  };
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}
