/** The status bar's provider text; no vscode import, so unit tests can check it. */
import type { ModelDType, ModelInfo } from '../shared/protocol';

const SHORT_DTYPE: Record<ModelDType, string> = { float32: 'fp32', float16: 'fp16', bfloat16: 'bf16' };

/**
 * "CPU", "CUDA fp16", "MPS bf16", "WebGPU fp16 · NVIDIA H200": the provider, its dtype on GPUs, and the WebGPU
 * adapter; the PyTorch engine's are prefixed with its name ("PyTorch CUDA bf16", "PyTorch CPU").
 */
export function providerLabel(m: Pick<ModelInfo, 'executionProvider' | 'dtype' | 'adapterName' | 'engine' | 'precision'>): string {
  const base = onnxOrDeviceLabel(m);
  // Where the precision is known and the label does not already name it (CPU shows none): "CPU int8".
  const precision = m.precision && !base.includes(m.precision) ? ` ${m.precision}` : '';
  return m.engine === 'pytorch' ? `PyTorch ${base}${precision}` : `${base}${precision}`;
}

function onnxOrDeviceLabel(m: Pick<ModelInfo, 'executionProvider' | 'dtype' | 'adapterName'>): string {
  if (m.executionProvider === 'cpu') return 'CPU';
  const dtype = SHORT_DTYPE[m.dtype] ?? m.dtype;
  if (m.executionProvider !== 'webgpu') return `${m.executionProvider.toUpperCase()} ${dtype}`;
  const adapter = m.adapterName ? ` · ${m.adapterName.replace(/\s*\(.*$/, '')}` : '';
  return `WebGPU ${dtype}${adapter}`;
}
