/**
 * The inference environment as facts: which engine, execution provider and adapter a model would run on
 * and why, the graph's dtype and expert formulation, the memory estimate, and which op types ONNX Runtime
 * placed on the CPU (from its placement log, read in a child process). Used by `moe-scope doctor` and by
 * the editor's "MoE: Check inference environment" command (call inferenceEnvironment from the host: it
 * runs in the calling process and spawns one child, so call it from the inference process or the CLI
 * rather than blocking the extension host).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { Checkpoint } from './checkpoint';
import { createRuntime, sessionProviders } from './runtime';
import { placementOf } from './webgpu';
import { EngineFailure, type ExecutionProviderSetting, type InferenceEnvironmentReport } from '../shared/protocol';

export interface DoctorOptions {
  provider: ExecutionProviderSetting;
  cacheDir?: string;
  /** Only 'onnx' here (the ONNX Runtime engine). */
  engine?: string;
}

export async function inferenceEnvironment(modelPath: string, opts: DoctorOptions): Promise<InferenceEnvironmentReport> {
  const engine = opts.engine ?? 'onnx';
  if (engine !== 'onnx') throw new EngineFailure('bad-input', `engine "${engine}" is not known to this report (the ONNX Runtime engine is "onnx")`);
  const t0 = Date.now();
  let ckpt: Checkpoint;
  try {
    ckpt = Checkpoint.open(modelPath);
  } catch (e) {
    throw new EngineFailure('bad-model', (e as Error).message);
  }
  const rt = await createRuntime(ckpt, { executionProvider: opts.provider, cacheDir: opts.cacheDir });
  const loadMs = Date.now() - t0;
  await rt.session.release();
  const placement = await placementOf(path.join(rt.graphDir, 'model.onnx'), sessionProviders(rt.provider));
  if (!placement.sessionOk) throw new EngineFailure('internal', `the placement check could not create the session: ${placement.error}`);
  // "All nodes placed on [CPUExecutionProvider]" lists no op types: count them from the graph itself.
  const onlyCpu = Object.keys(placement.nodesByProvider).every((p) => p === 'CPUExecutionProvider');
  if (onlyCpu) placement.cpuOpTypes = opTypeCounts(path.join(rt.graphDir, 'model.onnx'));
  return {
    engine,
    providerRequested: opts.provider,
    provider: rt.provider,
    decisions: rt.decisions,
    adapter: rt.adapter,
    dtype: rt.dtype,
    expertFormulation: rt.expertFormulation,
    memoryEstimateBytes: rt.memoryEstimate?.totalBytes,
    cpuOpTypes: placement.cpuOpTypes,
    nodesByProvider: placement.nodesByProvider,
    graphDir: rt.graphDir,
    loadMs,
  };
}

/** The report as lines of text (CLI without --json, the editor's output channel). */
export function describeEnvironment(r: InferenceEnvironmentReport): string {
  const lines = [`engine: ${r.engine}`, `provider: ${r.provider} (requested: ${r.providerRequested})`];
  for (const d of r.decisions) lines.push(`  ${d.used ? 'used' : 'passed over'} ${d.provider}: ${d.why}`);
  if (r.adapter?.ok) lines.push(`adapter: ${r.adapter.name}; shader-f16: ${r.adapter.shaderF16 ? 'yes' : 'no'}`);
  lines.push(`graph: ${r.dtype}, experts: ${r.expertFormulation}${r.memoryEstimateBytes ? `, estimated device memory ${(r.memoryEstimateBytes / 2 ** 30).toFixed(2)} GiB` : ''}`);
  lines.push(`nodes: ${Object.entries(r.nodesByProvider).map(([p, n]) => `${p} ${n}`).join(', ')}`);
  const cpu = Object.entries(r.cpuOpTypes);
  lines.push(`on the CPU: ${cpu.length ? cpu.map(([op, n]) => `${op} x${n}`).join(', ') : 'nothing'}`);
  return lines.join('\n');
}

/** Op types of a model file's graph with node counts (weights are external: the file is small). */
export function opTypeCounts(modelFile: string): Record<string, number> {
  const model = onnx.ModelProto.decode(fs.readFileSync(modelFile));
  const counts: Record<string, number> = {};
  for (const n of model.graph?.node ?? []) counts[n.opType ?? '?'] = (counts[n.opType ?? '?'] ?? 0) + 1;
  return counts;
}
