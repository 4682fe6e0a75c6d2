/**
 * Turns a checkpoint into a ready ONNX Runtime session: picks the execution provider (auto: CUDA when
 * its provider library is installed, then WebGPU when an adapter answers and can hold the model, then
 * CPU; every provider passed over is recorded with the reason), builds or reuses the cached graph for
 * that provider's compute dtype and expert formulation, and creates the session.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as ort from 'onnxruntime-node';
import type { Checkpoint } from './checkpoint';
import { buildDecoderGraph, buildExpertOutputGraph, GRAPH_VERSION } from './graph';
import { prepareWeights, expertPackingFor } from './weights';
import { stackedExpertViews } from './graphExpertsStandardOps';
import { probeWebGpu, estimateWebGpuMemory, formatBytes, webGpuProbeDiagnostics, type MemoryEstimate } from './webgpu';
import { PROBE_DIAGNOSTICS_PREFIX } from './webgpuProbeProcess';
import { choosePrecision, unsupportedPrecisionMessage, quantBitsOf, ONNX_PRECISIONS, type PrecisionChoice } from './precision/choose';
import { EXPERT_KERNEL } from './precision/prepareQuantized';
import { buildQuantizedCache, checkCacheIntegrity, writeCacheIntegrity, QUANTIZED_ALL_EXPERTS_REFUSAL } from './precision/cache';
import {
  EngineFailure,
  type ComputeDType,
  type ExecutionProvider,
  type ExecutionProviderSetting,
  type ExpertFormulation,
  type PrecisionSetting,
  type ProviderDecision,
  type WebGpuAdapterInfo,
  type WeightPrecision,
} from '../../shared/protocol';

export interface RuntimeOptions {
  executionProvider: ExecutionProviderSetting;
  cacheDir?: string;
  /** Off only for the benchmark that measures what exposing router logits costs. */
  exposeRouter?: boolean;
  /** WebGPU only: force the compute dtype (default float16 when the adapter has shader-f16). */
  webgpuDType?: ComputeDType;
  /** WebGPU only: force the expert formulation (tests, benchmarks). */
  webgpuExperts?: ExpertFormulation;
  /** Weight precision (default auto; see precision/choose.ts). */
  precision?: PrecisionSetting;
  /** Extra session options (the doctor's verbose placement log). */
  sessionLog?: { severity: number };
  log?: (message: string) => void;
}

export interface Runtime {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
  dtype: ComputeDType;
  providerNote?: string;
  decisions: ProviderDecision[];
  adapter?: WebGpuAdapterInfo;
  expertFormulation: ExpertFormulation;
  memoryEstimate?: MemoryEstimate;
  graphDir: string;
  graphReused: boolean;
  precision: WeightPrecision;
  /** Why that precision ("requested", or what auto weighed). */
  precisionWhy: string;
}

export function sessionProviders(provider: ExecutionProvider): string[] {
  return provider === 'cpu' ? ['cpu'] : [provider, 'cpu'];
}

export function expertGraphFile(includeOutputs: boolean): string {
  return includeOutputs ? 'all-experts-with-outputs.onnx' : 'all-experts.onnx';
}

export async function createExpertSession(rt: Runtime, includeOutputs: boolean): Promise<ort.InferenceSession> {
  if (rt.precision === 'int8' || rt.precision === 'int4') throw new EngineFailure('bad-input', QUANTIZED_ALL_EXPERTS_REFUSAL(rt.precision));
  return ort.InferenceSession.create(path.join(rt.graphDir, expertGraphFile(includeOutputs)), {
    executionProviders: sessionProviders(rt.provider),
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    ...precisionSessionOptions(rt.precision),
  });
}

/**
 * Precisions whose experts are QMoE (precision/prepareQuantized.ts, EXPERT_KERNEL: int4) run without
 * ONNX Runtime's prepacking, which would add a second, larger copy of the experts at session creation;
 * without it the process holds about half the memory at the same speed (measured; BENCHMARKS.md). The
 * others keep it: int8's MatMulNBits experts multiply in int8 only from prepacked weights.
 */
export function precisionSessionOptions(precision: WeightPrecision): ort.InferenceSession.SessionOptions {
  const bits = quantBitsOf(precision);
  return bits !== null && EXPERT_KERNEL[bits] === 'qmoe' ? { extra: { session: { disable_prepacking: '1' } } } : {};
}

/** The decoder graph with router_bias_L inputs (expert masking and router steering). */
export const INTERVENTION_GRAPH = 'model-intervention.onnx';

export async function createInterventionSession(rt: Runtime): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path.join(rt.graphDir, INTERVENTION_GRAPH), {
    executionProviders: sessionProviders(rt.provider),
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
}

export function defaultCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'moe-scope');
}

function cudaAvailability(): { ok: boolean; why?: string } {
  const cuda = ort.listSupportedBackends().find((b) => b.name === 'cuda');
  if (!cuda) return { ok: false, why: 'this onnxruntime-node build has no CUDA backend' };
  const libDir = path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch);
  const hasProvider = fs.existsSync(libDir) && fs.readdirSync(libDir).some((f) => f.includes('providers_cuda'));
  if (!cuda.bundled && !hasProvider) {
    return { ok: false, why: 'the CUDA provider library is not installed (onnxruntime-node was installed with its CUDA download skipped)' };
  }
  return { ok: true };
}

export async function createRuntime(ckpt: Checkpoint, options: RuntimeOptions): Promise<Runtime> {
  const log = options.log ?? (() => {});
  const wanted = options.executionProvider;
  const order: ExecutionProvider[] = wanted === 'auto' ? ['cuda', 'webgpu', 'cpu'] : wanted === 'cpu' ? ['cpu'] : [wanted, 'cpu'];
  const decisions: ProviderDecision[] = [];
  const passOver = (provider: ExecutionProvider, why: string) => {
    decisions.push({ provider, used: false, why });
    log(`${provider}: not used: ${why}`);
  };
  const precisionWanted = options.precision ?? 'auto';
  for (const provider of order) {
    if (precisionWanted !== 'auto' && !ONNX_PRECISIONS[provider].includes(precisionWanted)) {
      if (provider === 'cpu' || wanted === provider) throw new EngineFailure('bad-input', unsupportedPrecisionMessage(provider, precisionWanted));
      passOver(provider, `cannot run precision ${precisionWanted} (it runs ${ONNX_PRECISIONS[provider].join(', ')})`);
      continue;
    }
    if (provider === 'cpu') {
      const choice = choosePrecision(ckpt, 'cpu', precisionWanted);
      log(`precision ${choice.precision}: ${choice.why}`);
      const rt = await createFor(ckpt, 'cpu', 'float32', options, log, choice);
      decisions.push({ provider: 'cpu', used: true, why: wanted === 'cpu' ? 'requested' : 'fallback: no faster provider could run the model' });
      // A provider the user asked for by name, or one that was there but failed, deserves a warning;
      // auto passing over an absent provider is normal and shows only in the decisions.
      const warn = decisions.filter((d) => !d.used && (wanted === d.provider || /could not start/.test(d.why)));
      const providerNote = warn.length ? `${warn.map((d) => `${d.provider.toUpperCase()} ${d.why}`).join('; ')}; running on CPU.` : undefined;
      if (providerNote) log(providerNote);
      return { ...rt, decisions, providerNote };
    }
    let adapter: WebGpuAdapterInfo | undefined;
    let memoryEstimate: MemoryEstimate | undefined;
    let dtype: ComputeDType = 'float16';
    if (provider === 'cuda') {
      const cuda = cudaAvailability();
      if (!cuda.ok) {
        passOver('cuda', `not available: ${cuda.why}`);
        continue;
      }
    } else {
      adapter = await probeWebGpu();
      const diagnostics = webGpuProbeDiagnostics();
      if (diagnostics) log(PROBE_DIAGNOSTICS_PREFIX + diagnostics);
      if (!adapter.ok) {
        passOver('webgpu', `not available: ${adapter.why}`);
        continue;
      }
      if (adapter.software && wanted === 'auto') {
        passOver('webgpu', `${adapter.name} is a software driver running on the CPU: slower than the CPU engine (ask for webgpu explicitly to use it)`);
        continue;
      }
      dtype =
        precisionWanted === 'fp32' ? 'float32' : precisionWanted === 'fp16' ? 'float16' : (options.webgpuDType ?? (adapter.shaderF16 ? 'float16' : 'float32'));
      if (dtype === 'float16' && !adapter.shaderF16) {
        const why = `${adapter.name} has no shader-f16, so it cannot run precision fp16 (it runs fp32)`;
        if (wanted === 'webgpu') throw new EngineFailure('bad-input', `WebGPU ${why}`);
        passOver('webgpu', why);
        continue;
      }
      memoryEstimate = webGpuMemoryEstimate(ckpt, dtype);
      if (adapter.memoryBytes !== undefined && memoryEstimate.totalBytes > adapter.memoryBytes * 0.9) {
        const why = `cannot hold the model: the ${dtype} graph needs about ${formatBytes(memoryEstimate.totalBytes)} (weights ${formatBytes(memoryEstimate.weightBytes)}, activations at ${memoryEstimate.tokens} tokens ${formatBytes(memoryEstimate.activationBytes)}) and ${adapter.name} has ${formatBytes(adapter.memoryBytes)}`;
        if (wanted === 'webgpu')
          throw new EngineFailure(
            'provider-unavailable',
            `WebGPU ${why}. Use the CPU instead: set moeScope.executionProvider to "cpu" or "auto" (CLI: --provider cpu).`,
          );
        passOver('webgpu', why);
        continue;
      }
    }
    try {
      const precision: WeightPrecision = dtype === 'float32' ? 'fp32' : 'fp16';
      const precisionWhy =
        precisionWanted !== 'auto'
          ? 'requested'
          : provider === 'cuda'
            ? 'auto: the CUDA graph runs fp16'
            : `auto: ${dtype === 'float16' ? 'the adapter has shader-f16' : 'the adapter has no shader-f16'}`;
      const rt = await createFor(ckpt, provider, dtype, options, log, { precision, why: precisionWhy, needBytes: 0 });
      decisions.push({
        provider,
        used: true,
        why: wanted === provider ? 'requested' : provider === 'cuda' ? 'auto: CUDA provider installed' : `auto: adapter ${adapter?.name} answered`,
      });
      return { ...rt, decisions, adapter, memoryEstimate };
    } catch (e) {
      if (e instanceof EngineFailure) throw e;
      passOver(provider, `${wanted === provider ? 'was requested but' : 'was tried but'} could not start (${firstLine((e as Error).message)})`);
    }
  }
  throw new Error('unreachable: the CPU provider ends the provider order');
}

/** GPU memory of the WebGPU graph: every weight in the compute dtype plus activations at 2048 tokens. */
export function webGpuMemoryEstimate(ckpt: Checkpoint, dtype: ComputeDType): MemoryEstimate {
  const bytes = dtype === 'float32' ? 4 : 2;
  const weightBytes = ckpt.expectedTensors().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * bytes, 0);
  const tokens = Math.min(ckpt.arch.maxPositions, 2048);
  return estimateWebGpuMemory(ckpt.arch, weightBytes, bytes, tokens, tokens);
}

export function expertFormulationFor(provider: ExecutionProvider, override?: ExpertFormulation): ExpertFormulation {
  if (provider !== 'webgpu') return 'moe-op';
  const env = process.env.MOE_SCOPE_WEBGPU_EXPERTS;
  if (env && env !== 'dense-gated' && env !== 'grouped')
    throw new EngineFailure('bad-input', `MOE_SCOPE_WEBGPU_EXPERTS must be dense-gated or grouped, not "${env}"`);
  return override ?? (env as ExpertFormulation | undefined) ?? WEBGPU_DEFAULT_EXPERTS;
}

/**
 * 'dense-gated' is the only formulation whose every decoder node (shape computations aside) runs on the
 * GPU: 'grouped' does about k/E of the expert work, but its int64 index bookkeeping (one-hot, ranks,
 * scatter of row indices: ~12 small nodes per layer) has no WebGPU kernels and runs on the CPU, with a
 * GPU->CPU->GPU round trip per layer. bench/gpu/webgpu.ts measures both (MOE_SCOPE_WEBGPU_EXPERTS
 * selects one); see BENCHMARKS.md for the numbers behind this default.
 */
export const WEBGPU_DEFAULT_EXPERTS: ExpertFormulation = 'dense-gated';

async function createFor(
  ckpt: Checkpoint,
  provider: ExecutionProvider,
  dtype: ComputeDType,
  options: RuntimeOptions,
  log: (m: string) => void,
  choice: PrecisionChoice,
): Promise<Omit<Runtime, 'decisions'>> {
  const precision = { precision: choice.precision, precisionWhy: choice.why };
  // float16 MoE returns zeros on the CPU kernel: the CPU always gets float32.
  const packing = expertPackingFor(provider);
  const experts = expertFormulationFor(provider, options.webgpuExperts);
  const exposeRouter = options.exposeRouter ?? true;
  const cacheRoot = options.cacheDir ?? defaultCacheDir();
  // fp32 and fp16 keep the key they had before precisions existed, so existing caches stay valid.
  const keyOpts =
    choice.precision === 'int8' || choice.precision === 'int4'
      ? { dtype, packing, exposeRouter, experts, precision: choice.precision }
      : { dtype, packing, exposeRouter, experts };
  const key = cacheKey(ckpt, keyOpts);
  const graphDir = path.join(cacheRoot, `${path.basename(ckpt.dir).replace(/[^\w.-]/g, '_')}-${key}`);
  const modelFile = path.join(graphDir, 'model.onnx');
  removeAbandonedBuilds(cacheRoot, log);
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: sessionProviders(provider),
    graphOptimizationLevel: 'all',
    logSeverityLevel: (options.sessionLog?.severity ?? 3) as 0 | 1 | 2 | 3 | 4,
    logVerbosityLevel: 0,
    ...precisionSessionOptions(choice.precision),
  };
  // "complete" is written only once a session has actually loaded the graph: a folder without it (a
  // build killed after its rename, or one whose session failed) is rebuilt, never trusted.
  const marker = path.join(graphDir, 'complete');
  const damage = fs.existsSync(marker) ? checkCacheIntegrity(graphDir, choice.precision) : null;
  if (damage) log(`the cached graph in ${graphDir} is not usable (${damage}); rebuilding it`);
  if (fs.existsSync(marker) && !damage) {
    try {
      const session = await ort.InferenceSession.create(modelFile, sessionOptions);
      return { session, provider, dtype, expertFormulation: experts, graphDir, graphReused: true, ...precision };
    } catch (e) {
      log(`the cached graph in ${graphDir} does not load (${firstLine((e as Error).message)}); rebuilding it`);
    }
  }
  const t0 = Date.now();
  const tmp = `${graphDir}.tmp-${process.pid}-${Date.now()}`;
  fs.mkdirSync(tmp, { recursive: true });
  try {
    if (choice.precision === 'int8' || choice.precision === 'int4') {
      await buildQuantizedCache(ckpt, tmp, choice.precision, { dtype, packing, exposeRouter, experts }, log);
    } else {
      const weights = prepareWeights(ckpt, tmp, dtype, packing);
      const decoderWeights = experts === 'dense-gated' ? stackedExpertViews(weights, ckpt.arch) : weights;
      fs.writeFileSync(path.join(tmp, 'model.onnx'), buildDecoderGraph(ckpt.arch, ckpt.names, decoderWeights, { dtype, packing, exposeRouter, experts }));
      // Same weights, plus router-bias inputs; loaded only when a request carries an intervention.
      fs.writeFileSync(
        path.join(tmp, INTERVENTION_GRAPH),
        buildDecoderGraph(ckpt.arch, ckpt.names, decoderWeights, { dtype, packing, exposeRouter, experts, routerInputs: true }),
      );
      // The all-experts analysis graphs read the same experts.bin; they are loaded only when asked for.
      for (const includeOutputs of [false, true]) {
        fs.writeFileSync(
          path.join(tmp, expertGraphFile(includeOutputs)),
          buildExpertOutputGraph(ckpt.arch, weights, { dtype, packing, exposeRouter, includeOutputs }),
        );
      }
      fs.writeFileSync(
        path.join(tmp, 'meta.json'),
        JSON.stringify(
          {
            checkpoint: ckpt.dir,
            graphVersion: GRAPH_VERSION,
            dtype,
            packing,
            experts,
            exposeRouter,
            convertedBytes: weights.convertedBytes,
            linkedFiles: weights.linkedFiles,
          },
          null,
          2,
        ),
      );
    }
    writeCacheIntegrity(tmp, choice.precision);
    fs.rmSync(graphDir, { recursive: true, force: true });
    fs.renameSync(tmp, graphDir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelFile, sessionOptions);
  } catch (e) {
    fs.rmSync(graphDir, { recursive: true, force: true });
    throw e;
  }
  fs.writeFileSync(marker, '');
  log(`built ${choice.precision} graph for ${provider} (${experts}) in ${Date.now() - t0} ms: ${graphDir}`);
  return { session, provider, dtype, expertFormulation: experts, graphDir, graphReused: false, ...precision };
}

/**
 * Removes the temporary folders of graph builds whose process is gone (killed midway): for a real
 * model they hold gigabytes of converted weights. A build of a live process is left alone.
 */
export function removeAbandonedBuilds(cacheRoot: string, log: (m: string) => void = () => {}): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(cacheRoot);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /\.tmp-(\d+)-\d+$/.exec(name);
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue;
    fs.rmSync(path.join(cacheRoot, name), { recursive: true, force: true });
    removed.push(name);
    log(`removed ${path.join(cacheRoot, name)}, left by a graph build that was interrupted`);
  }
  return removed;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function cacheKey(ckpt: Checkpoint, opts: object): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ v: GRAPH_VERSION, opts, ort: ort.env.versions?.common ?? '' }));
  h.update(ckpt.configText);
  for (const f of ckpt.files) {
    const st = fs.statSync(f.file);
    h.update(`${path.basename(f.file)}:${st.size}:${st.mtimeMs}:${st.ino}`);
  }
  return h.digest('hex').slice(0, 16);
}

function firstLine(s: string): string {
  return s.split('\n')[0].slice(0, 300);
}
