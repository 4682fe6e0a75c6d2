/**
 * The WebGPU execution provider of onnxruntime-node (Dawn: Vulkan on Linux, D3D12 on Windows, Metal on
 * macOS): a cheap adapter probe (cached per process, run in a child process: webgpuProbeProcess.ts), the adapter's name, the GPU memory a graph needs,
 * and the parsing of ONNX Runtime's node-placement log.
 *
 * ONNX Runtime does not report which adapter Dawn picked, so the name comes from the driver in use: the
 * Vulkan ICD Dawn loads (VK_DRIVER_FILES / VK_ICD_FILENAMES or the standard ICD folders), refined with
 * nvidia-smi for NVIDIA. shader-f16 is detected by running a float16 graph with CPU fallback disabled:
 * ORT registers float16 WebGPU kernels only when the device has the feature.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { OnnxGraphBuilder } from './formats/onnxWriter';
import type { WebGpuAdapterInfo } from '../../shared/protocol';
import { probeGraphsInChild } from './webgpuProbeProcess';

let cached: Promise<WebGpuAdapterInfo> | null = null;

/** Probes the WebGPU adapter once per process (a 2x4 float16 and float32 graph; ~0.5 s on lavapipe). */
export function probeWebGpu(): Promise<WebGpuAdapterInfo> {
  cached ??= runProbe();
  return cached;
}

/** For tests: forget the cached answer. */
export function resetWebGpuProbe(): void {
  cached = null;
}

function probeGraph(dtype: 'float32' | 'float16'): Uint8Array {
  const g = new OnnxGraphBuilder(`webgpu-probe-${dtype}`);
  const x = g.input('x', 'float32', [2, 4]);
  const xc = dtype === 'float32' ? x : g.op('Cast', [x], { to: 10 });
  const y = g.op('Softmax', [g.op('MatMul', [xc, g.op('Transpose', [xc])])], { axis: -1 });
  g.op('Cast', [y], { to: 1 }, { output: 'y' });
  g.output('y', 'float32', [2, 2]);
  return g.toBytes({ producer: 'moe-scope' });
}

/** The probe graph's right answer: rows of x are orthonormal, so x x^T = I and softmax rows are [e/(e+1), 1/(e+1)] and mirrored. */
function checkProbeOutput(dtype: 'float32' | 'float16', y: number[]): void {
  const a = Math.E / (Math.E + 1);
  const want = [a, 1 - a, 1 - a, a];
  const tol = dtype === 'float32' ? 1e-5 : 2e-3;
  if (!want.every((v, i) => Math.abs(y[i] - v) < tol)) throw new Error(`the ${dtype} probe graph returned wrong numbers (${y.join(', ')})`);
}

let lastDiagnostics = '';

/** What Dawn and the Vulkan loader printed during the last probe (kept out of the terminal; see webgpuProbeProcess.ts). */
export function webGpuProbeDiagnostics(): string {
  return lastDiagnostics;
}

async function runProbe(): Promise<WebGpuAdapterInfo> {
  const t0 = Date.now();
  if (!ort.listSupportedBackends().some((b) => b.name === 'webgpu')) {
    return { ok: false, why: 'this onnxruntime-node build has no WebGPU backend', probeMs: Date.now() - t0 };
  }
  const probe = await probeGraphsInChild([probeGraph('float32'), probeGraph('float16')]);
  lastDiagnostics = probe.diagnostics;
  const [f32, f16] = probe.results;
  try {
    if (!f32.ok) throw new Error(f32.error);
    checkProbeOutput('float32', f32.y);
  } catch (e) {
    return { ok: false, why: adapterFailure((e as Error).message), probeMs: Date.now() - t0 };
  }
  let shaderF16 = true;
  try {
    if (!f16.ok) throw new Error(f16.error);
    checkProbeOutput('float16', f16.y);
  } catch {
    shaderF16 = false;
  }
  const driver = describeDriver();
  // Where the driver's memory cannot be known (or to test the out-of-memory path): MOE_SCOPE_GPU_MEMORY_BYTES.
  const override = Number(process.env.MOE_SCOPE_GPU_MEMORY_BYTES);
  if (override > 0) driver.memoryBytes = override;
  return { ok: true, name: driver.name, memoryBytes: driver.memoryBytes, shaderF16, software: driver.software, probeMs: Date.now() - t0 };
}

function adapterFailure(message: string): string {
  if (/No supported adapters|Failed to get a WebGPU adapter/i.test(message)) {
    return process.platform === 'linux'
      ? 'no WebGPU adapter: Dawn found no Vulkan driver (install the Vulkan loader libvulkan1 and a GPU driver; without a GPU, Mesa 25 lavapipe: scripts/setup-lavapipe.sh)'
      : 'no WebGPU adapter answered';
  }
  return `the WebGPU provider could not start (${message.split('\n')[0].slice(0, 200)})`;
}

interface DriverDescription {
  name: string;
  memoryBytes?: number;
  software?: boolean;
}

/** Names the adapter after the driver Dawn loads (see the module comment for why not from ORT). */
export function describeDriver(): DriverDescription {
  if (process.platform === 'darwin') return { name: 'Metal (system default GPU)' };
  if (process.platform === 'win32') return { name: 'Direct3D 12 (system default GPU)' };
  const icds = vulkanIcdFiles();
  const libs = icds.map((f) => {
    try {
      return String(JSON.parse(fs.readFileSync(f, 'utf8'))?.ICD?.library_path ?? '');
    } catch {
      return '';
    }
  });
  const has = (re: RegExp) => libs.some((l) => re.test(l)) || icds.some((f) => re.test(path.basename(f)));
  if (has(/nvidia/i)) {
    const gpu = nvidiaSmi();
    return gpu ? { name: `${gpu.name} (NVIDIA Vulkan)`, memoryBytes: gpu.memoryBytes } : { name: 'NVIDIA GPU (Vulkan)' };
  }
  if (has(/radeon/i)) return { name: 'AMD GPU (Mesa RADV Vulkan)' };
  if (has(/intel/i)) return { name: 'Intel GPU (Mesa ANV Vulkan)' };
  if (has(/lvp/i)) {
    const ver = lavapipeVersion(libs.find((l) => /lvp/.test(l)) ?? '');
    return { name: `lavapipe (Mesa${ver ? ' ' + ver : ''} CPU Vulkan driver, no GPU)`, memoryBytes: os.totalmem(), software: true };
  }
  return { name: icds.length ? `Vulkan driver ${path.basename(icds[0], '.json')}` : 'Vulkan adapter' };
}

function vulkanIcdFiles(): string[] {
  const explicit = process.env.VK_DRIVER_FILES || process.env.VK_ICD_FILENAMES;
  if (explicit) return explicit.split(':').filter((f) => f && fs.existsSync(f));
  const dirs = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  return dirs.flatMap((d) =>
    fs.existsSync(d)
      ? fs
          .readdirSync(d)
          .filter((f) => f.endsWith('.json'))
          .map((f) => path.join(d, f))
      : [],
  );
}

function nvidiaSmi(): { name: string; memoryBytes: number } | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [name, mib] = out
      .split('\n')[0]
      .split(',')
      .map((s) => s.trim());
    return name ? { name, memoryBytes: Number(mib) * 1024 * 1024 } : null;
  } catch {
    return null;
  }
}

function lavapipeVersion(lib: string): string | null {
  // .tools/lavapipe/complete (scripts/setup-lavapipe.sh) records the unpacked package version.
  const marker = lib.replace(/\/root\/usr\/lib\/.*$/, '/complete');
  try {
    return (
      fs
        .readFileSync(marker, 'utf8')
        .trim()
        .replace(/^mesa-vulkan-drivers\s+/, '')
        .split('~')[0] || null
    );
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------------------------------ memory

export interface MemoryEstimate {
  weightBytes: number;
  activationBytes: number;
  totalBytes: number;
  /** Tokens per run the activation part assumes. */
  tokens: number;
}

export interface ActivationShape {
  numLayers: number;
  hiddenSize: number;
  numExperts: number;
  expertIntermediate: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
}

/**
 * GPU memory of the WebGPU decoder graph: every weight (resident) plus the largest live activations of
 * one layer at `tokens` tokens per run, the KV cache of all layers, and the logits. The dense expert
 * formulation's [tokens, experts * intermediate] gate/up/activation buffers dominate at large batches.
 */
export function estimateWebGpuMemory(a: ActivationShape, weightBytes: number, bytesPerValue: number, tokens: number, contextTokens: number): MemoryEstimate {
  const expertActs = 3 * tokens * a.numExperts * a.expertIntermediate;
  const attention = a.numHeads * tokens * contextTokens * 2 + 4 * tokens * a.numHeads * a.headDim;
  const kv = 2 * a.numLayers * contextTokens * a.numKvHeads * a.headDim * 4; // float32 present/past
  const stream = 6 * tokens * a.hiddenSize + tokens * a.numExperts * 4;
  const activationBytes = (expertActs + attention + stream) * bytesPerValue + kv + a.vocabSize * 4 * Math.min(tokens, 256);
  return { weightBytes, activationBytes, totalBytes: weightBytes + activationBytes, tokens };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  return `${Math.max(1, Math.round(n / 1024))} KiB`;
}

// ---------------------------------------------------------------------------------- placement log

export interface Placement {
  /** Nodes per execution provider ("WebGpuExecutionProvider", "CPUExecutionProvider", ...). */
  nodesByProvider: Record<string, number>;
  /** Op types on the CPU provider with node counts. */
  cpuOpTypes: Record<string, number>;
}

/**
 * Parses ONNX Runtime's verbose session log (logSeverityLevel 0, verbosity 0): "Node(s) placed on [P].
 * Number of nodes: N" or "All nodes placed on [P]. Number of nodes: N", each followed by one
 * "VerifyEachNodeIsAssignedToAnEp]   OpType (node name)" line per node.
 */
export function parsePlacementLog(log: string): Placement {
  const nodesByProvider: Record<string, number> = {};
  const cpuOpTypes: Record<string, number> = {};
  let current: string | null = null;
  for (const line of log.split('\n')) {
    const head = /(?:All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)/.exec(line);
    if (head) {
      current = head[1];
      nodesByProvider[current] = (nodesByProvider[current] ?? 0) + Number(head[2]);
      continue;
    }
    if (!current || !line.includes('VerifyEachNodeIsAssignedToAnEp')) continue;
    const op = /\]\s+([A-Z][\w.]*) \(/.exec(line);
    if (op && current === 'CPUExecutionProvider') cpuOpTypes[op[1]] = (cpuOpTypes[op[1]] ?? 0) + 1;
  }
  return { nodesByProvider, cpuOpTypes };
}

/**
 * Where ONNX Runtime places each node of a model file for the given providers: a child process creates
 * the session with the verbose log (which goes to the native stderr, out of reach in-process) and the
 * log is parsed. The child inherits this process's environment (VK_DRIVER_FILES for lavapipe).
 */
export function placementOf(modelFile: string, providers: string[], timeoutMs = 300_000): Promise<Placement & { sessionOk: boolean; error?: string }> {
  const ortPath = require.resolve('onnxruntime-node');
  const script = `const ort = require(${JSON.stringify(ortPath)});
ort.InferenceSession.create(${JSON.stringify(modelFile)}, { executionProviders: ${JSON.stringify(providers)}, graphOptimizationLevel: 'all', logSeverityLevel: 0, logVerbosityLevel: 0 })
  .then((s) => s.release()).then(() => process.stdout.write('SESSION_OK\\n'), (e) => { process.stdout.write('SESSION_ERROR ' + String(e && e.message || e).split('\\n')[0] + '\\n'); process.exitCode = 1; });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    // Only the placement lines are kept: the full verbose log of a large graph is hundreds of MB.
    let pending = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const lines = (pending + d.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const l of lines) if (l.includes('VerifyEachNodeIsAssignedToAnEp') || l.includes('kernel not found')) err += l + '\n';
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      const sessionOk = out.includes('SESSION_OK');
      const error = /SESSION_ERROR (.*)/.exec(out)?.[1] ?? (sessionOk ? undefined : 'the placement process ended without creating a session');
      resolve({ ...parsePlacementLog(err + pending), sessionOk, error });
    });
  });
}
