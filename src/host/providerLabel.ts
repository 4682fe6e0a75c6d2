/** The status bar's provider text; no vscode import, so unit tests can check it. */
import type { ModelInfo } from '../shared/protocol';
/** "CPU", "CUDA fp16", "WebGPU fp16 · NVIDIA H200": the provider, its dtype on GPUs, and the adapter. */
export function providerLabel(m: Pick<ModelInfo, 'executionProvider' | 'dtype' | 'adapterName'>): string {
  if (m.executionProvider === 'cpu') return 'CPU';
  const dtype = m.dtype === 'float16' ? 'fp16' : 'fp32';
  if (m.executionProvider === 'cuda') return `CUDA ${dtype}`;
  const adapter = m.adapterName ? ` · ${m.adapterName.replace(/\s*\(.*$/, '')}` : '';
  return `WebGPU ${dtype}${adapter}`;
}
