/** When a failed load offers "Run on CPU" (no vscode import: tested without an editor). */
import { EngineFailure } from '../shared/protocol';

export const RUN_ON_CPU = 'Run on CPU';

/**
 * True when the engine said the requested provider cannot run the model but the CPU can: ONNX Runtime's
 * WebGPU/CUDA memory check, or the PyTorch worker's GPU memory check and out-of-memory errors.
 */
export function offersRunOnCpu(e: unknown): e is EngineFailure {
  return e instanceof EngineFailure && e.code === 'provider-unavailable';
}
