/**
 * RFC 4180 CSV: fields separated by commas, records by CRLF or LF (a lone CR is accepted too);
 * a field that starts with a double quote runs to the matching quote, may hold commas and line
 * breaks, and writes a quote as "". A leading UTF-8 BOM is skipped.
 *
 * Text after a closing quote, and a quote that never closes, make the whole record a ParseIssue: such a
 * record cannot be split into fields without guessing, and a wrong guess would shift every column after it.
 *
 * A quote inside an unquoted field (ab"c) breaks the RFC too, but is unambiguous: it cannot open a quoted
 * section, so it is kept as a character, the way Python's csv module and pandas read it, and reported as
 * a warning. The original MMLU has one such row (college_medicine_val.csv, line 6) and its published
 * conversions keep the quote.
 */
import type { ParseIssue } from './types';

export interface CsvRecord {
  fields: string[];
  /** 1-based line on which the record starts. */
  line: number;
  /** UTF-16 offset of the record's first character in the parsed text. */
  start: number;
  /** UTF-16 offset just past the record's last field (its line break not included). */
  end: number;
  /** Set when the record was read although it bends the format (also listed in CsvResult.warnings). */
  warning?: ParseIssue;
}

export interface CsvResult {
  records: CsvRecord[];
  /** Records that could not be read; they are not in `records`. */
  issues: ParseIssue[];
  /** Records that were read although they bend the format; the reason says how they were read. */
  warnings: ParseIssue[];
}

const QUOTE = 34;
const COMMA = 44;
const LF = 10;
const CR = 13;

/** Offset just past the first line break at or after `from` (or the end of the text). */
function nextLineStart(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) return i + 1;
    if (c === CR) return text.charCodeAt(i + 1) === LF ? i + 2 : i + 1;
  }
  return text.length;
}

function columnOf(text: string, offset: number): number {
  let i = offset;
  while (i > 0) {
    const c = text.charCodeAt(i - 1);
    if (c === LF || c === CR) break;
    i--;
  }
  return offset - i + 1;
}

/** Parses the whole text. Blank lines between records are ignored, not returned as empty records. */
export function parseCsv(text: string, file: string): CsvResult {
  const records: CsvRecord[] = [];
  const issues: ParseIssue[] = [];
  const warnings: ParseIssue[] = [];
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;

  while (i < n) {
    const recordStart = i;
    const recordLine = line;
    const fields: string[] = [];
    let problem: { line: number; reason: string } | null = null;
    let looseQuote: { line: number; reason: string } | null = null;
    let quoted = false;
    let unterminated = false;

    for (;;) {
      if (text.charCodeAt(i) === QUOTE) {
        quoted = true;
        const openLine = line;
        const openAt = i;
        let value = '';
        let j = i + 1;
        let closed = false;
        while (j < n) {
          const q = text.indexOf('"', j);
          const chunkEnd = q < 0 ? n : q;
          for (let k = j; k < chunkEnd; k++) {
            const c = text.charCodeAt(k);
            if (c === LF || (c === CR && text.charCodeAt(k + 1) !== LF)) line++;
          }
          if (q < 0) break;
          value += text.slice(j, q);
          if (text.charCodeAt(q + 1) === QUOTE) {
            value += '"';
            j = q + 2;
            continue;
          }
          j = q + 1;
          closed = true;
          break;
        }
        if (!closed) {
          problem = {
            line: openLine,
            reason: `unterminated quoted field: the quote at line ${openLine}, column ${columnOf(text, openAt)} is never closed`,
          };
          unterminated = true;
          break;
        }
        i = j;
        fields.push(value);
        const c = text.charCodeAt(i);
        if (i < n && c !== COMMA && c !== LF && c !== CR) {
          problem ??= {
            line,
            reason: `unexpected text after a closing quote at line ${line}, column ${columnOf(text, i)} (a quote inside a field must be written "")`,
          };
          // The rest of the field is junk; skip it so the record ends where its line ends.
          while (i < n) {
            const d = text.charCodeAt(i);
            if (d === COMMA || d === LF || d === CR) break;
            i++;
          }
        }
      } else {
        let j = i;
        while (j < n) {
          const c = text.charCodeAt(j);
          if (c === COMMA || c === LF || c === CR) break;
          if (c === QUOTE && !looseQuote) {
            looseQuote = {
              line,
              reason: `quote inside an unquoted field at line ${line}, column ${columnOf(text, j)}; read as a literal " character`,
            };
          }
          j++;
        }
        fields.push(text.slice(i, j));
        i = j;
      }
      if (i < n && text.charCodeAt(i) === COMMA) {
        i++;
        continue;
      }
      break;
    }

    if (unterminated) {
      issues.push({ file, line: problem!.line, reason: problem!.reason + withStart(recordLine, problem!.line) });
      // The missing quote most likely belongs to this line; the lines after it are probably good records.
      i = nextLineStart(text, recordStart);
      line = recordLine + 1;
      continue;
    }

    const end = i;
    const endLine = line;
    if (i < n) {
      if (text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF) i += 2;
      else i += 1;
      line++;
    }

    if (problem) {
      issues.push({ file, line: problem.line, reason: problem.reason + withStart(recordLine, problem.line) });
      // A record that ran over several lines before going wrong usually means a quote went missing on its
      // first line; re-reading from the next line recovers the records that were swallowed.
      if (endLine > recordLine) {
        i = nextLineStart(text, recordStart);
        line = recordLine + 1;
      }
      continue;
    }
    if (!quoted && fields.length === 1 && fields[0] === '') continue;
    if (looseQuote) {
      const warning = { file, ...looseQuote };
      warnings.push(warning);
      records.push({ fields, line: recordLine, start: recordStart, end, warning });
    } else {
      records.push({ fields, line: recordLine, start: recordStart, end });
    }
  }
  return { records, issues, warnings };
}

function withStart(recordLine: number, problemLine: number): string {
  return recordLine === problemLine ? '' : ` (in the record starting at line ${recordLine})`;
}
