/**
 * What "Trace selection" sends to the model for a question found in a document, and how the traced
 * prompt's characters map back to the document (for hover highlights both ways). No vscode import.
 */
import type { FoundQuestion } from '../mmlu/questionAtCursor';
import { promptHeader, formatItem, pyStrip } from '../mmlu/prompt';
import type { TokenSpan } from '../shared/protocol';

/** A piece of the traced prompt copied verbatim from the document: prompt [start, end) = document [docStart, ...). */
export interface Segment {
  promptStart: number;
  promptEnd: number;
  docStart: number;
}

/**
 * The zero-shot MMLU prompt in the harness format (ending in "Answer:" so that the next token is the
 * model's answer), and the question's and choices' positions in both the prompt and the document.
 * A piece that does not appear verbatim in the document's range (e.g. a CSV field with doubled quotes)
 * simply has no segment: its tokens are not highlighted.
 */
export function buildTracePrompt(q: FoundQuestion, docText: string, range: [number, number]): { text: string; segments: Segment[] } {
  const header = promptHeader(q.subject);
  const text = `${header}${formatItem(q)}\nAnswer:`;
  const segments: Segment[] = [];
  let promptPos = header.length;
  let docPos = range[0];
  for (const piece of [pyStrip(q.question), ...q.choices]) {
    if (!piece) continue;
    const at = text.indexOf(piece, promptPos);
    if (at < 0) continue;
    promptPos = at + piece.length;
    const inDoc = docText.indexOf(piece, docPos);
    if (inDoc >= 0 && inDoc + piece.length <= range[1]) {
      segments.push({ promptStart: at, promptEnd: at + piece.length, docStart: inDoc });
      docPos = inDoc + piece.length;
    }
  }
  return { text, segments };
}

/** Document [start, end) ranges covered by a token of the prompt. */
export function docRangesOfToken(segments: readonly Segment[], token: Pick<TokenSpan, 'start' | 'end'>): [number, number][] {
  const out: [number, number][] = [];
  for (const s of segments) {
    const a = Math.max(token.start, s.promptStart);
    const b = Math.min(token.end, s.promptEnd);
    if (a < b) out.push([s.docStart + a - s.promptStart, s.docStart + b - s.promptStart]);
  }
  return out;
}

/** The token whose text covers a document offset, or null outside the copied pieces. */
export function tokenAtDocOffset(segments: readonly Segment[], tokens: readonly Pick<TokenSpan, 'start' | 'end'>[], offset: number): number | null {
  const seg = segments.find((s) => offset >= s.docStart && offset < s.docStart + (s.promptEnd - s.promptStart));
  if (!seg) return null;
  const p = seg.promptStart + (offset - seg.docStart);
  const i = tokens.findIndex((t) => p >= t.start && p < t.end);
  return i >= 0 ? i : null;
}
