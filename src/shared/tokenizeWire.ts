/**
 * `tokenize` results as they cross a process boundary (both engine processes): ids and [start, end) offsets
 * as flat typed arrays instead of one object per token (a run's plan tokenizes 2.4 M tokens), plus the text
 * of every token whose text is not the slice of the input it points at (inserted tokens, split UTF-8).
 */
import type { TokenSpan, TokenizeResult, WorkerTokenizeResult } from './protocol';

export function packTokenizeResults(texts: readonly string[], results: readonly TokenizeResult[]): WorkerTokenizeResult {
  let total = 0;
  for (const r of results) total += r.ids.length;
  const ids = new Int32Array(total);
  const offsets = new Int32Array(2 * total);
  const counts = new Int32Array(results.length);
  const inserted: [number, string][] = [];
  let pos = 0;
  results.forEach((r, i) => {
    const text = texts[i] ?? '';
    counts[i] = r.ids.length;
    for (let j = 0; j < r.ids.length; j++, pos++) {
      const t = r.tokens[j]!;
      ids[pos] = r.ids[j]!;
      offsets[2 * pos] = t.start;
      offsets[2 * pos + 1] = t.end;
      if (t.text !== text.slice(t.start, t.end)) inserted.push([pos, t.text]);
    }
  });
  return { ids, offsets, counts, inserted };
}

export function unpackTokenizeResults(texts: readonly string[], w: WorkerTokenizeResult): TokenizeResult[] {
  if (w.counts.length !== texts.length) throw new Error(`${w.counts.length} encodings for ${texts.length} texts`);
  const inserted = new Map(w.inserted);
  const out: TokenizeResult[] = [];
  let pos = 0;
  for (let i = 0; i < texts.length; i++) {
    const n = w.counts[i]!;
    const text = texts[i]!;
    const ids = Array.from(w.ids.subarray(pos, pos + n));
    const tokens: TokenSpan[] = new Array<TokenSpan>(n);
    for (let j = 0; j < n; j++) {
      const start = w.offsets[2 * (pos + j)]!;
      const end = w.offsets[2 * (pos + j) + 1]!;
      tokens[j] = { id: ids[j]!, text: inserted.get(pos + j) ?? text.slice(start, end), start, end };
    }
    out.push({ ids, tokens });
    pos += n;
  }
  return out;
}
