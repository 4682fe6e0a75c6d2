/**
 * WebGPU for tests: on machines without a GPU (CI) the WebGPU provider runs on Mesa 25's lavapipe,
 * installed privately by scripts/setup-lavapipe.sh. The Vulkan loader reads VK_DRIVER_FILES when Dawn
 * creates its instance, so setting it in this process before the first WebGPU session is enough.
 * MOE_WEBGPU_SYSTEM=1 uses the machine's own Vulkan drivers instead (a real GPU).
 * A missing adapter FAILS the calling test with the reason; it never skips.
 */
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { probeWebGpu } from '../../src/engines/onnxruntime/webgpu';
import type { WebGpuAdapterInfo } from '../../src/shared/protocol';
import { REPO_ROOT } from './models';

export async function requireWebGpu(): Promise<WebGpuAdapterInfo> {
  if (!process.env.MOE_WEBGPU_SYSTEM) {
    let out: string;
    try {
      out = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'setup-lavapipe.sh')], {
        encoding: 'utf8',
        // Its progress lines ("up to date") are shown only when it fails.
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 300_000,
      });
    } catch (e) {
      const said = String((e as { stderr?: string }).stderr ?? '')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ');
      throw new Error(`WebGPU tests need lavapipe and scripts/setup-lavapipe.sh failed: ${(e as Error).message.split('\n')[0]}${said ? ` (${said})` : ''}`, {
        cause: e,
      });
    }
    for (const line of out.split('\n')) {
      const m = /^(VK_DRIVER_FILES|XDG_RUNTIME_DIR)=(.*)$/.exec(line.trim());
      if (m) process.env[m[1]] = m[2];
    }
  }
  const adapter = await probeWebGpu();
  if (!adapter.ok) throw new Error(`WebGPU tests cannot run: ${adapter.why}`);
  return adapter;
}
