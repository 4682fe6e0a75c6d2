/**
 * The status bar tooltip as pieces of trusted markdown and of text. Everything that comes from a file
 * or a folder name (the model path, config.json's demo note, provider notes, error messages) is a text
 * piece, which the MarkdownString escapes, so a crafted config.json cannot inject links or markup.
 * No vscode import: tests check the split.
 */
import type { ModelInfo } from '../shared/protocol';
import { describePrecisionCheck } from '../shared/precisionCheck';

export type TooltipPiece = { markdown: string } | { text: string };

const PROVIDER_NAMES: Record<string, string> = { cpu: 'CPU', cuda: 'CUDA', webgpu: 'WebGPU', mps: 'MPS' };
const providerName = (p: unknown) => PROVIDER_NAMES[String(p)] ?? String(p);

/** What the engine is doing, in words (the tooltip's heading). */
const STATE_WORDS: Record<string, string> = {
  'no-model': 'no model selected',
  loading: 'loading the model',
  ready: 'ready',
  busy: 'working',
  error: 'error',
  stopped: 'stopped (starts again on the next request)',
};

/**
 * The status bar's model name: the loaded model's family, else the configured folder's name (with its
 * parent when the folder has a generic name such as "model"), marked "not loaded yet" until a trace or
 * evaluation loads it.
 */
export function statusBarName(info: Pick<ModelInfo, 'family' | 'demo'> | null, configuredPath: string): string {
  if (info) return `${info.family}${info.demo ? (info.demo.trained ? ' (trained toy demo)' : ' (demo)') : ''}`;
  if (!configuredPath) return 'no model';
  const parts = configuredPath.replace(/[\\/]+$/, '').split(/[\\/]/);
  const base = parts[parts.length - 1] ?? configuredPath;
  const generic = /^(model|models|checkpoint|weights|snapshot|[0-9a-f]{40})$/i.test(base) && parts.length > 1;
  return `${generic ? `${parts[parts.length - 2]}/${base}` : base} (not loaded yet)`;
}

export function statusTooltip(state: string, info: ModelInfo | null, lastError: string | null, configuredPath = ''): TooltipPiece[] {
  const notLoaded = !info && configuredPath && (state === 'no-model' || state === 'stopped');
  const heading = notLoaded ? 'model not loaded yet' : (STATE_WORDS[state] ?? state);
  const out: TooltipPiece[] = [{ markdown: `**MoE Scope** — ${heading}\n\n` }];
  if (notLoaded) {
    out.push({ markdown: 'Model: ' }, { text: configuredPath }, { markdown: '\n\n' });
    out.push({ markdown: 'It loads on the first trace or evaluation.\n\n' });
  }
  if (info) {
    out.push({ markdown: 'Model: ' }, { text: info.path }, { markdown: '\n\n' });
    out.push(
      { text: `${info.numLayers} layers × ${info.numExperts} experts, top-${info.topK}; ${providerName(info.executionProvider)} (${info.dtype})` },
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
    for (const d of info.providerDecisions ?? []) if (!d.used) out.push({ text: `${providerName(d.provider)} not used: ${d.why}` }, { markdown: '\n\n' });
    if (info.providerNote) out.push({ text: info.providerNote }, { markdown: '\n\n' });
    if (info.demo) out.push({ text: info.demo.note }, { markdown: '\n\n' });
  }
  if (state === 'error' && lastError) out.push({ text: lastError }, { markdown: '\n\n' });
  out.push({ markdown: 'Click to select a model.' });
  return out;
}

/**
 * Text as markdown that renders as itself: every ASCII punctuation character backslash-escaped (CommonMark
 * allows that for all of them), spaces kept. (MarkdownString.appendText turns every space into &nbsp;,
 * which makes a paragraph one unbreakable word that the hover then breaks anywhere: "ins|tall".)
 */
export function markdownText(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>&~"'$:=^@;,?%/]/g, (c) => `\\${c}`).replace(/\r?\n/g, '  \n');
}

/** The tooltip pieces as one markdown string: markdown pieces as they are, text pieces escaped. */
export function tooltipMarkdown(pieces: TooltipPiece[]): string {
  return pieces.map((p) => ('markdown' in p ? p.markdown : markdownText(p.text))).join('');
}
