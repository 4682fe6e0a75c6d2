/** The status bar tooltip never renders text from files as markdown (issue 12). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statusTooltip } from '../../src/host/statusTooltip';
import type { ModelInfo } from '../../src/shared/protocol';

const hostile = '[click](command:workbench.action.terminal.new) **bold** <img src=x> $(alert)';

test('paths, demo notes, provider notes and errors from files are text pieces; only fixed labels are markdown', () => {
  const info = {
    path: `/models/${hostile}`,
    numLayers: 2,
    numExperts: 8,
    topK: 2,
    executionProvider: 'cpu',
    dtype: 'float32',
    providerNote: `note ${hostile}`,
    demo: { note: `demo ${hostile}` },
    adapterName: `adapter ${hostile}`,
    providerDecisions: [{ provider: 'cuda', used: false, why: `why ${hostile}` }],
  } as unknown as ModelInfo;
  const pieces = statusTooltip('error', info, `error ${hostile}`);
  const markdown = pieces
    .filter((p): p is { markdown: string } => 'markdown' in p)
    .map((p) => p.markdown)
    .join('');
  const text = pieces.filter((p): p is { text: string } => 'text' in p).map((p) => p.text);
  assert.ok(!markdown.includes('command:') && !markdown.includes('<img') && !markdown.includes('/models/'), markdown);
  for (const expected of [info.path, info.providerNote, info.demo!.note, info.adapterName, `CUDA not used: why ${hostile}`, `error ${hostile}`])
    assert.ok(text.includes(expected!), `${expected} is a text piece`);
  assert.deepEqual(
    statusTooltip('ready', null, 'old error').filter((p) => 'text' in p),
    [],
    'no stale error when not in error state',
  );
});
