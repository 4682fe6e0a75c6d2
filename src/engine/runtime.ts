/**
 * Turns a checkpoint into a ready ONNX Runtime session: picks the execution provider (CUDA when asked
 * for or available, CPU otherwise, with the reason when it falls back), builds or reuses the cached
 * graph for that provider's compute dtype, and creates the session.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as ort from 'onnxruntime-node';
import type { Checkpoint } from './checkpoint';
import { buildDecoderGraph, buildExpertOutputGraph, GRAPH_VERSION } from './graph';
import { prepareWeights, expertPackingFor } from './weights';
import type { ComputeDType, ExecutionProvider, ExecutionProviderSetting } from '../shared/protocol';

export interface RuntimeOptions {
  executionProvider: ExecutionProviderSetting;
  cacheDir?: string;
  /** Off only for the benchmark that measures what exposing router logits costs. */
  exposeRouter?: boolean;
  log?: (message: string) => void;
}

export interface Runtime {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
  dtype: ComputeDType;
  providerNote?: string;
  graphDir: string;
  graphReused: boolean;
}

export function expertGraphFile(includeOutputs: boolean): string {
  return includeOutputs ? 'all-experts-with-outputs.onnx' : 'all-experts.onnx';
}

export async function createExpertSession(rt: Runtime, includeOutputs: boolean): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path.join(rt.graphDir, expertGraphFile(includeOutputs)), {
    executionProviders: rt.provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
}

/** The decoder graph with router_bias_L inputs (expert masking and router steering). */
export const INTERVENTION_GRAPH = 'model-intervention.onnx';

export async function createInterventionSession(rt: Runtime): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path.join(rt.graphDir, INTERVENTION_GRAPH), {
    executionProviders: rt.provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
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
  let note: string | undefined;
  if (wanted !== 'cpu') {
    const cuda = cudaAvailability();
    if (cuda.ok) {
      try {
        return await createFor(ckpt, 'cuda', options, log);
      } catch (e) {
        note = `CUDA was ${wanted === 'cuda' ? 'requested' : 'tried'} but could not start (${firstLine((e as Error).message)}); running on CPU.`;
      }
    } else if (wanted === 'cuda') {
      note = `CUDA was requested but ${cuda.why}; running on CPU.`;
    }
    if (note) log(note);
  }
  const rt = await createFor(ckpt, 'cpu', options, log);
  return { ...rt, providerNote: note };
}

async function createFor(ckpt: Checkpoint, provider: ExecutionProvider, options: RuntimeOptions, log: (m: string) => void): Promise<Runtime> {
  // float16 MoE returns zeros on the CPU kernel; CUDA gets half precision for memory and speed.
  const dtype: ComputeDType = provider === 'cuda' ? 'float16' : 'float32';
  const packing = expertPackingFor(provider);
  const exposeRouter = options.exposeRouter ?? true;
  const cacheRoot = options.cacheDir ?? defaultCacheDir();
  const key = cacheKey(ckpt, { dtype, packing, exposeRouter });
  const graphDir = path.join(cacheRoot, `${path.basename(ckpt.dir).replace(/[^\w.-]/g, '_')}-${key}`);
  const modelFile = path.join(graphDir, 'model.onnx');
  let reused = fs.existsSync(path.join(graphDir, 'complete'));
  if (!reused) {
    const t0 = Date.now();
    const tmp = `${graphDir}.tmp-${process.pid}-${Date.now()}`;
    fs.mkdirSync(tmp, { recursive: true });
    try {
      const weights = prepareWeights(ckpt, tmp, dtype, packing);
      fs.writeFileSync(path.join(tmp, 'model.onnx'), buildDecoderGraph(ckpt.arch, ckpt.names, weights, { dtype, packing, exposeRouter }));
      // Same weights, plus router-bias inputs; loaded only when a request carries an intervention.
      fs.writeFileSync(path.join(tmp, INTERVENTION_GRAPH), buildDecoderGraph(ckpt.arch, ckpt.names, weights, { dtype, packing, exposeRouter, routerInputs: true }));
      // The all-experts analysis graphs read the same experts.bin; they are loaded only when asked for.
      for (const includeOutputs of [false, true]) {
        fs.writeFileSync(path.join(tmp, expertGraphFile(includeOutputs)), buildExpertOutputGraph(ckpt.arch, weights, { dtype, packing, exposeRouter, includeOutputs }));
      }
      fs.writeFileSync(
        path.join(tmp, 'meta.json'),
        JSON.stringify({ checkpoint: ckpt.dir, graphVersion: GRAPH_VERSION, dtype, packing, exposeRouter, convertedBytes: weights.convertedBytes, linkedFiles: weights.linkedFiles }, null, 2),
      );
      fs.writeFileSync(path.join(tmp, 'complete'), '');
      fs.rmSync(graphDir, { recursive: true, force: true });
      fs.renameSync(tmp, graphDir);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    log(`built ${dtype} graph for ${provider} in ${Date.now() - t0} ms: ${graphDir}`);
    reused = false;
  }
  const session = await ort.InferenceSession.create(modelFile, {
    executionProviders: provider === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
  });
  return { session, provider, dtype, graphDir, graphReused: reused };
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
