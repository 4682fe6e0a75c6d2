/**
 * Runs the WebGPU probe graphs in a short-lived child process. Dawn and the Vulkan loader write straight to
 * the process's standard error ("XDG_RUNTIME_DIR is invalid", "Vulkan shaderUniform*ArrayDynamicIndexing
 * required" with a C++ source line) whenever an adapter is looked for, on success as on failure; Node
 * cannot intercept native writes, so the looking happens in a child whose stderr is kept as diagnostics
 * (moe-scope --verbose, the output channel at debug level) instead of reaching the user's terminal.
 */
import { spawn } from 'node:child_process';

/** Starts the log line that carries the probe's diagnostics: the editor shows it at debug level, the CLI with --verbose. */
export const PROBE_DIAGNOSTICS_PREFIX = 'WebGPU probe diagnostics (Dawn, Vulkan loader): ';

export interface ChildProbeOutcome {
  /** Per graph: the output numbers, or the error message of creating or running its session. */
  results: ({ ok: true; y: number[] } | { ok: false; error: string })[];
  /** What Dawn, the Vulkan loader and ONNX Runtime wrote on stderr while probing. */
  diagnostics: string;
}

// Plain JavaScript run with `node -e`: it must not depend on the bundle it is called from.
const CHILD_SOURCE = `
const ort = require(process.env.MOE_SCOPE_ORT_PATH);
(async () => {
  const results = [];
  for (const b64 of process.argv.slice(1)) {
    try {
      const session = await ort.InferenceSession.create(Buffer.from(b64, 'base64'), {
        executionProviders: ['webgpu'], logSeverityLevel: 3, extra: { session: { disable_cpu_ep_fallback: '1' } },
      });
      try {
        const x = new Float32Array([1, 0, 0, 0, 0, 1, 0, 0]);
        const out = await session.run({ x: new ort.Tensor('float32', x, [2, 4]) });
        results.push({ ok: true, y: Array.from(out.y.data) });
      } finally {
        await session.release();
      }
    } catch (e) {
      results.push({ ok: false, error: String((e && e.message) || e) });
    }
  }
  process.stdout.write(JSON.stringify(results));
})();
`;

/** Runs each graph (input x: float32 [2, 4], output y) on WebGPU alone in a child process. */
export function probeGraphsInChild(graphs: Uint8Array[], timeoutMs = 120_000): Promise<ChildProbeOutcome> {
  return new Promise((resolve) => {
    let ortPath: string;
    try {
      ortPath = require.resolve('onnxruntime-node');
    } catch (e) {
      resolve({ results: graphs.map(() => ({ ok: false, error: `onnxruntime-node not found: ${(e as Error).message}` })), diagnostics: '' });
      return;
    }
    const child = spawn(process.execPath, ['-e', CHILD_SOURCE, ...graphs.map((g) => Buffer.from(g).toString('base64'))], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // ELECTRON_RUN_AS_NODE: inside the editor process.execPath is Electron, which runs as plain Node with it.
      env: { ...process.env, MOE_SCOPE_ORT_PATH: ortPath, ELECTRON_RUN_AS_NODE: '1' },
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const fail = (why: string) => resolve({ results: graphs.map(() => ({ ok: false, error: why })), diagnostics: stderr.trim() });
    child.on('error', (e) => fail(`the probe process could not start: ${e.message}`));
    child.on('close', (code, signal) => {
      try {
        const results = JSON.parse(stdout) as ChildProbeOutcome['results'];
        if (!Array.isArray(results) || results.length !== graphs.length) throw new Error('wrong number of results');
        resolve({ results, diagnostics: stderr.trim() });
      } catch {
        fail(`the probe process ended (${signal ?? `exit ${code}`}) without a result: ${stderr.trim().split('\n').slice(-2).join(' | ').slice(0, 300)}`);
      }
    });
  });
}
