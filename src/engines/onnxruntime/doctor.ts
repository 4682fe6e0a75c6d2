/**
 * The inference environment as facts: which engine, execution provider and adapter a model would run on
 * and why, the graph's dtype and expert formulation, the memory estimate, and which op types ONNX Runtime
 * placed on the CPU (from its placement log, read in a child process). Used by `moe-scope doctor` and by
 * the editor's "MoE: Check inference environment" command. inferenceEnvironment builds the graph and
 * creates a session in the calling process (seconds for a large model): the extension host should run it
 * through the CLI (`moe-scope doctor --json`) or the inference process, never on its own thread.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { Checkpoint } from './checkpoint';
import { createRuntime, sessionProviders } from './runtime';
import { placementOf } from './webgpu';
import { checkPython, chooseEngine, defaultPython } from '../client/pythonWorker';
import {
  EngineFailure,
  ENGINE_KINDS,
  type EngineKind,
  type EngineSetting,
  type ExecutionProvider,
  type ExecutionProviderSetting,
  type InferenceEnvironmentReport,
  type PrecisionSetting,
  type PythonEnvironment,
} from '../../shared/protocol';

const PYTORCH_PRECISIONS: readonly PrecisionSetting[] = ['auto', 'fp32', 'bf16'];

export interface DoctorOptions {
  provider: ExecutionProviderSetting;
  /** Weight precision (default auto), as eval and trace take it. */
  precision?: PrecisionSetting;
  cacheDir?: string;
  /** onnxruntime (default), pytorch, or auto (PyTorch when its Python has a GPU, as the CLI's --engine). */
  engine?: EngineSetting;
  /** The PyTorch engine's interpreter (default: MOE_SCOPE_PYTHON, else python3). */
  python?: string;
}

export async function inferenceEnvironment(modelPath: string, opts: DoctorOptions): Promise<InferenceEnvironmentReport> {
  const setting = opts.engine ?? 'onnxruntime';
  if (!(['auto', ...ENGINE_KINDS] as string[]).includes(setting))
    throw new EngineFailure('bad-input', `engine must be onnxruntime, pytorch or auto, not "${setting}"`);
  let engine: EngineKind = 'onnxruntime';
  let engineWhy = 'requested';
  let python: PythonEnvironment | undefined;
  if (setting !== 'onnxruntime') {
    python = await checkPython(defaultPython(opts.python));
    if (setting === 'auto') {
      const choice = chooseEngine(python);
      engine = choice.engine;
      engineWhy = `auto: ${choice.why}`;
    } else if (!python.usable) {
      throw new EngineFailure('bad-input', `the PyTorch engine cannot run: ${python.problems.join('; ')}`);
    } else engine = 'pytorch';
  }
  if (engine === 'pytorch') {
    // The PyTorch worker refuses the same when it loads (python/moe_scope_worker/engine.py, PRECISIONS).
    if (opts.precision && !PYTORCH_PRECISIONS.includes(opts.precision))
      throw new EngineFailure(
        'bad-input',
        `precision ${opts.precision} cannot run in the PyTorch engine, which runs ${PYTORCH_PRECISIONS.filter((p) => p !== 'auto').join(', ')}; int8 and int4 run in the ONNX Runtime engine on the CPU (--engine onnxruntime --provider cpu)`,
      );
    const device = python!.devices?.[0];
    const provider: ExecutionProvider = device ? device.type : 'cpu';
    return {
      engine,
      engineWhy,
      python,
      providerRequested: opts.provider,
      provider,
      decisions: [{ provider, used: true, why: device ? `PyTorch sees ${device.name}` : 'PyTorch sees no GPU' }],
      cpuOpTypes: {},
      nodesByProvider: {},
    };
  }
  const t0 = Date.now();
  let ckpt: Checkpoint;
  try {
    ckpt = Checkpoint.open(modelPath);
  } catch (e) {
    throw new EngineFailure('bad-model', (e as Error).message);
  }
  const rt = await createRuntime(ckpt, { executionProvider: opts.provider, precision: opts.precision, cacheDir: opts.cacheDir });
  const loadMs = Date.now() - t0;
  await rt.session.release();
  const placement = await placementOf(path.join(rt.graphDir, 'model.onnx'), sessionProviders(rt.provider));
  if (!placement.sessionOk) throw new EngineFailure('internal', `the placement check could not create the session: ${placement.error}`);
  // "All nodes placed on [CPUExecutionProvider]" lists no op types: count them from the graph itself.
  const onlyCpu = Object.keys(placement.nodesByProvider).every((p) => p === 'CPUExecutionProvider');
  if (onlyCpu) placement.cpuOpTypes = opTypeCounts(path.join(rt.graphDir, 'model.onnx'));
  return {
    engine,
    engineWhy,
    python,
    providerRequested: opts.provider,
    provider: rt.provider,
    decisions: rt.decisions,
    adapter: rt.adapter,
    dtype: rt.dtype,
    expertFormulation: rt.expertFormulation,
    precision: rt.precision,
    precisionWhy: rt.precisionWhy,
    memoryEstimateBytes: rt.memoryEstimate?.totalBytes,
    cpuOpTypes: placement.cpuOpTypes,
    nodesByProvider: placement.nodesByProvider,
    graphDir: rt.graphDir,
    loadMs,
  };
}

/** The report as lines of text (CLI without --json, the editor's output channel). */
export function describeEnvironment(r: InferenceEnvironmentReport): string {
  const lines = [`engine: ${r.engine} (${r.engineWhy})`, `provider: ${r.provider} (requested: ${r.providerRequested})`];
  for (const d of r.decisions) lines.push(`  ${d.used ? 'used' : 'passed over'} ${d.provider}: ${d.why}`);
  if (r.python)
    lines.push(
      `python: ${r.python.executable}${r.python.torch ? `, torch ${r.python.torch}, transformers ${r.python.transformers}` : ''}${r.python.problems.length ? `; problems: ${r.python.problems.join('; ')}` : ''}`,
    );
  if (r.adapter?.ok) lines.push(`adapter: ${r.adapter.name}; shader-f16: ${r.adapter.shaderF16 ? 'yes' : 'no'}`);
  if (r.engine === 'onnxruntime') {
    lines.push(
      `graph: ${r.dtype}${r.precision ? `, precision ${r.precision} (${r.precisionWhy ?? 'no reason recorded'})` : ''}, experts: ${r.expertFormulation}${r.memoryEstimateBytes ? `, estimated device memory ${(r.memoryEstimateBytes / 2 ** 30).toFixed(2)} GiB` : ''}`,
    );
    lines.push(
      `nodes: ${Object.entries(r.nodesByProvider)
        .map(([p, n]) => `${p} ${n}`)
        .join(', ')}`,
    );
    const cpu = Object.entries(r.cpuOpTypes);
    lines.push(`on the CPU: ${cpu.length ? cpu.map(([op, n]) => `${op} x${n}`).join(', ') : 'nothing'}`);
  }
  return lines.join('\n');
}

/** Op types of a model file's graph with node counts (weights are external: the file is small). */
export function opTypeCounts(modelFile: string): Record<string, number> {
  const model = onnx.ModelProto.decode(fs.readFileSync(modelFile));
  const counts: Record<string, number> = {};
  for (const n of model.graph?.node ?? []) counts[n.opType ?? '?'] = (counts[n.opType ?? '?'] ?? 0) + 1;
  return counts;
}
