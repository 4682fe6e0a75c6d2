/** The status bar before the first trace, and a tooltip that wraps between words (issue 24, items 6 and 15). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { markdownText, statusBarName, statusTooltip, tooltipMarkdown } from '../../src/host/statusTooltip';
import type { ModelInfo } from '../../src/shared/protocol';

test('before the first trace the status bar names the configured model and says it is not loaded yet', () => {
  assert.equal(statusBarName(null, '/home/u/models/OLMoE-1B-7B-0924'), 'OLMoE-1B-7B-0924 (not loaded yet)');
  // A folder with a generic name gets its parent: ".moe-scope-demo/model", not "model".
  assert.equal(statusBarName(null, '/repo/.moe-scope-demo/model/'), '.moe-scope-demo/model (not loaded yet)');
  assert.equal(statusBarName(null, ''), 'no model');
  assert.equal(statusBarName({ family: 'olmoe', demo: { note: 'x' } } as ModelInfo, '/x/model'), 'olmoe (demo)');
  const tip = tooltipMarkdown(statusTooltip('no-model', null, null, '/repo/.moe-scope-demo/model'));
  assert.match(tip, /model not loaded yet/);
  assert.doesNotMatch(tip, /no-model/);
  assert.match(tip, /loads on the first trace/);
});

test('tooltip text keeps its spaces (no &nbsp;), so lines wrap between words; provider names are spelled as written', () => {
  const info = {
    path: '/m',
    numLayers: 16,
    numExperts: 64,
    topK: 8,
    executionProvider: 'cpu',
    dtype: 'float32',
    providerDecisions: [
      { provider: 'webgpu', used: false, why: 'not available: no WebGPU adapter: install the Vulkan loader libvulkan1' },
      { provider: 'cuda', used: false, why: 'not available' },
    ],
  } as unknown as ModelInfo;
  const md = tooltipMarkdown(statusTooltip('ready', info, null));
  assert.doesNotMatch(md, /&nbsp;|\u00a0/);
  assert.match(md, /WebGPU not used\\: not available\\: no WebGPU adapter\\: install the Vulkan loader libvulkan1/);
  assert.match(md, /CUDA not used/);
  assert.doesNotMatch(md, /WEBGPU|Not CUDA/);
});

test('markdownText escapes every markdown and HTML character, so file text stays text', () => {
  const hostile = '[x](command:evil) **b** <img src=x> `c` # h';
  const escaped = markdownText(hostile);
  // No unescaped markup character survives.
  assert.doesNotMatch(escaped, /(^|[^\\])[[\]()*<>`#]/);
  assert.equal(escaped.replace(/\\(.)/g, '$1'), hostile);
});
