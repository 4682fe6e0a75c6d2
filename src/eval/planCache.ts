/**
 * The evaluation plan cached on disk, so that every shard of a run and every re-run reads it instead of
 * tokenizing the split again.
 *
 * Keyed by everything a plan depends on: the tokenizer's content (file hashes), the engine that tokenizes,
 * the context length, the dataset's fingerprint, the split, the question selection, the shots and the
 * prompt format (a hash of a prompt built from fixed sample questions, so any change to the template
 * changes it). The file is a JSON header and the ids as little-endian int32, written to a temporary file
 * and renamed. A file that is not one (truncated, bit-flipped: the body's SHA-256 is checked), or is one
 * for another key, or names a question the selection lacks, is never used: the plan is made again and the
 * file replaced.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildPrompt } from '../mmlu/prompt';
import type { MmluQuestion } from '../mmlu/types';
import type { FileFingerprint } from './fingerprint';
import type { EvalPlan, PlannedQuestion, PrefixGroup } from './plan';
import { readRegularFile } from '../shared/safeFiles';

const MAGIC = Buffer.from('MSPLAN\0\x01', 'latin1');
/** Bump when the plan's meaning or this layout changes. */
const PLAN_FORMAT = 'moe-scope.plan/1 joined-at-window';

export interface PlanCacheKey {
  format: string;
  prompt: string;
  tokenizer: Record<string, FileFingerprint>;
  engine: string;
  maxPositions: number;
  dataset: string;
  split: string;
  shots: number;
  subjects: string[] | null;
  limitPerSubject: number;
}

const TOKENIZER_FILE = /^(tokenizer\.json|tokenizer_config\.json|special_tokens_map\.json|vocab\.json|merges\.txt|tokenizer\.model)$/;

/** A hash of the prompt the template builds for fixed sample questions: changes whenever the template does. */
export function promptFormatHash(): string {
  const sample = (n: number): MmluQuestion => ({
    id: `sample-${n}`,
    subject: 'sample_subject',
    split: 'dev',
    question: `  Question ${n}?\n`,
    choices: [`a${n}`, `b${n}`, `c${n}`, `d${n}`],
    answer: (n % 4) as 0 | 1 | 2 | 3,
    source: { file: 'sample.csv', line: n },
  });
  const shots = [1, 2, 3].map(sample);
  const built = buildPrompt(sample(4), [sample(4), ...shots], 2);
  return sha256(JSON.stringify(built)).slice(0, 16);
}

export function planCacheKey(fields: {
  modelFiles: Record<string, FileFingerprint>;
  engine: string;
  maxPositions: number;
  dataset: string;
  split: string;
  shots: number;
  subjects: string[] | null;
  limitPerSubject: number;
}): PlanCacheKey {
  const tokenizer = Object.fromEntries(
    Object.entries(fields.modelFiles)
      .filter(([name]) => TOKENIZER_FILE.test(name))
      .sort((a, b) => a[0].localeCompare(b[0])),
  );
  const { modelFiles: _files, ...rest } = fields;
  return { format: PLAN_FORMAT, prompt: promptFormatHash(), tokenizer, ...rest };
}

export function planCacheFile(cacheDir: string, key: PlanCacheKey): string {
  return path.join(cacheDir, 'plans', `plan-${sha256(JSON.stringify(key)).slice(0, 32)}.bin`);
}

interface Header {
  key: PlanCacheKey;
  bodyInts: number;
  bodySha256: string;
  groups: { key: string; subject: string; prefix: number; heads: number[]; questions: [string, number, number, number, number, number][] }[];
  skipped: EvalPlan['skipped'];
  promptTokens: number;
  reusedTokens: number;
  tokenization: EvalPlan['tokenization'];
}

/** Writes the plan atomically (temporary file, fsync, rename). */
export function writePlanCache(file: string, key: PlanCacheKey, plan: EvalPlan): void {
  const ints: number[] = [];
  const push = (a: readonly number[]) => {
    for (const x of a) ints.push(x);
  };
  const groups: Header['groups'] = plan.groups.map((g) => {
    push(g.prefixIds);
    const heads: (readonly number[])[] = [];
    for (const q of g.questions) if (!heads.includes(q.head)) heads.push(q.head);
    for (const h of heads) push(h);
    const questions = g.questions.map((q): Header['groups'][number]['questions'][number] => {
      push(q.tail);
      return [q.question.id, heads.indexOf(q.head), q.tail.length, q.questionTokens[0], q.questionTokens[1], q.shotsUsed];
    });
    return { key: g.key, subject: g.subject, prefix: g.prefixIds.length, heads: heads.map((h) => h.length), questions };
  });
  const body = Buffer.from(Int32Array.from(ints).buffer);
  const header: Header = {
    key,
    bodyInts: ints.length,
    bodySha256: sha256(body),
    groups,
    skipped: plan.skipped,
    promptTokens: plan.promptTokens,
    reusedTokens: plan.reusedTokens,
    tokenization: plan.tokenization,
  };
  let headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces so that the body starts at a multiple of 4 (int32 views without a copy).
  const pad = (4 - ((MAGIC.length + 4 + headerBytes.length) % 4)) % 4;
  headerBytes = Buffer.concat([headerBytes, Buffer.alloc(pad, 0x20)]);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length, 0);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    const fd = fs.openSync(tmp, 'w');
    try {
      for (const part of [MAGIC, length, headerBytes, body]) {
        let done = 0;
        while (done < part.length) done += fs.writeSync(fd, part, done, part.length - done);
      }
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export type PlanCacheRead = { plan: EvalPlan } | { problem: string };

/**
 * The cached plan for `key` over `questions` (the run's selection), or why there is none usable: absent,
 * corrupt, for another key, or naming a question the selection lacks.
 */
export function readPlanCache(file: string, key: PlanCacheKey, questions: readonly MmluQuestion[]): PlanCacheRead {
  let buf: Buffer;
  try {
    buf = readRegularFile(file, { maxBytes: 1 << 30 });
  } catch {
    return { problem: 'absent' };
  }
  try {
    return { plan: decode(buf, key, questions) };
  } catch (e) {
    return { problem: (e as Error).message };
  }
}

function decode(buf: Buffer, key: PlanCacheKey, questions: readonly MmluQuestion[]): EvalPlan {
  if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a plan file (bad magic)');
  const headerLength = buf.readUInt32LE(MAGIC.length);
  const bodyStart = MAGIC.length + 4 + headerLength;
  if (bodyStart > buf.length) throw new Error('truncated header');
  let header: Header;
  try {
    header = JSON.parse(buf.subarray(MAGIC.length + 4, bodyStart).toString('utf8')) as Header;
  } catch (e) {
    throw new Error(`header is not JSON (${(e as Error).message})`, { cause: e });
  }
  if (JSON.stringify(header?.key) !== JSON.stringify(key)) throw new Error('made for another tokenizer, dataset or options (foreign key)');
  const body = buf.subarray(bodyStart);
  if (body.length !== header.bodyInts * 4) throw new Error(`body of ${body.length} bytes, expected ${header.bodyInts * 4}`);
  if (sha256(body) !== header.bodySha256) throw new Error('body does not match its SHA-256 (corrupt)');
  const ints = body.byteOffset % 4 === 0 ? new Int32Array(body.buffer, body.byteOffset, header.bodyInts) : new Int32Array(Uint8Array.from(body).buffer);
  const byId = new Map(questions.map((q) => [q.id, q]));
  let at = 0;
  const take = (n: number): number[] => {
    if (!Number.isInteger(n) || n < 0 || at + n > ints.length) throw new Error('lengths overrun the body');
    const out = Array.from(ints.subarray(at, at + n));
    at += n;
    return out;
  };
  const groups: PrefixGroup[] = header.groups.map((g) => {
    const prefixIds = take(g.prefix);
    const heads = g.heads.map((n) => take(n));
    const planned = g.questions.map(([id, head, tailLength, q0, q1, shotsUsed]): PlannedQuestion => {
      const question = byId.get(id);
      if (!question || question.answer === null) throw new Error(`names question ${id}, which the selection does not hold`);
      if (!heads[head]) throw new Error(`question ${id} names head ${head} of ${heads.length}`);
      const tail = take(tailLength);
      return {
        question: question as PlannedQuestion['question'],
        head: heads[head],
        tail,
        numTokens: heads[head].length + tail.length,
        questionTokens: [q0, q1],
        shotsUsed,
      };
    });
    return { key: g.key, subject: g.subject, prefixIds, questions: planned };
  });
  if (at !== ints.length) throw new Error(`${ints.length - at} ids left over`);
  return { groups, skipped: header.skipped, promptTokens: header.promptTokens, reusedTokens: header.reusedTokens, tokenization: header.tokenization };
}

function sha256(data: string | Uint8Array): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
