/**
 * The status bar tooltip as pieces of trusted markdown and of text. Everything that comes from a file
 * or a folder name (the model path, config.json's demo note, provider notes, error messages) is a text
 * piece, which the MarkdownString escapes, so a crafted config.json cannot inject links or markup.
 * No vscode import: tests check the split.
 */
import type { ModelInfo } from '../shared/protocol';
import { describePrecisionCheck } from '../shared/precisionCheck';

export type TooltipPiece = { markdown: string } | { text: string };

export function statusTooltip(state: string, info: ModelInfo | null, lastError: string | null): TooltipPiece[] {
  const out: TooltipPiece[] = [{ markdown: `**MoE Scope** — engine ${state}\n\n` }];
  if (info) {
    out.push({ markdown: 'Model: ' }, { text: info.path }, { markdown: '\n\n' });
    out.push(
      { text: `${info.numLayers} layers × ${info.numExperts} experts, top-${info.topK}; ${String(info.executionProvider).toUpperCase()} (${info.dtype})` },
      { markdown: '\n\n' },
    );
    if (info.precision) {
      out.push({ text: `Precision: ${info.precision} (${info.precisionWhy ?? 'reason not recorded'})` }, { markdown: '\n\n' });
      const check = info.precisionCheck;
      if (check) out.push({ text: describePrecisionCheck(check) }, { markdown: '\n\n' });
      if (info.precision !== 'fp32')
        out.push({
          markdown: `[${check ? 'Measure again' : 'Measure'} how this precision changes routing (precision-check)](command:moeScope.precisionCheck)\n\n`,
        });
    }
    if (info.engine === 'pytorch')
      out.push({ markdown: 'Engine: PyTorch (transformers) on ' }, { text: info.device ?? String(info.executionProvider) }, { markdown: '\n\n' });
    if (info.adapterName) {
      out.push({ markdown: 'GPU adapter: ' }, { text: info.adapterName }, { markdown: '\n\n' });
      out.push(
        {
          text: `${info.dtype} weights; experts computed ${info.expertFormulation === 'dense-gated' ? 'densely on the GPU, weighted by the top-k gates' : 'by the MoE operator'}`,
        },
        { markdown: '\n\n' },
      );
    }
    for (const d of info.providerDecisions ?? []) if (!d.used) out.push({ text: `Not ${String(d.provider).toUpperCase()}: ${d.why}` }, { markdown: '\n\n' });
    if (info.providerNote) out.push({ text: info.providerNote }, { markdown: '\n\n' });
    if (info.demo) out.push({ text: info.demo.note }, { markdown: '\n\n' });
  }
  if (state === 'error' && lastError) out.push({ text: lastError }, { markdown: '\n\n' });
  out.push({ markdown: 'Click to select a model.' });
  return out;
}
