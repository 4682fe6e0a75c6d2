/** The status bar's provider text; no vscode import, so unit tests can check it. */
import type { ModelInfo } from '../shared/protocol';
/** "CPU", "CUDA fp16", "WebGPU fp16 · NVIDIA H200": the provider, its dtype on GPUs, and the adapter. */
export function providerLabel(m: Pick<ModelInfo, 'executionProvider' | 'dtype' | 'adapterName' | 'engine'>): string {
  const dtype = m.dtype === 'float16' ? 'fp16' : m.dtype === 'bfloat16' ? 'bf16' : 'fp32';
  // The PyTorch engine: "PyTorch CUDA bf16", "PyTorch MPS bf16", "PyTorch CPU".
  if (m.engine === 'pytorch') return `PyTorch ${m.executionProvider === 'cpu' ? 'CPU' : `${String(m.executionProvider).toUpperCase()} ${dtype}`}`;
  if (m.executionProvider === 'cpu') return 'CPU';
  if (m.executionProvider === 'cuda') return `CUDA ${dtype}`;
  const adapter = m.adapterName ? ` · ${m.adapterName.replace(/\s*\(.*$/, '')}` : '';
  return `WebGPU ${dtype}${adapter}`;
}
