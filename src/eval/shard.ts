/**
 * Sharding an evaluation: which of a run's batches one shard computes.
 *
 * The unit of partition is the unsharded run's own batch (same prefix group, same questions, same
 * order), so a shard computes exactly the batches a single machine would have computed and a merge can
 * reassemble records.jsonl batch for batch. Batches are ordered by subject (the plan's prefix groups), and
 * the shards are contiguous runs of that order balanced by TOKEN count: the shard's process tokenizes every
 * prompt of the run first (cheap next to scoring) and weighs each batch by the tokens it computes (its
 * questions' suffixes, plus the shared prefix on a group's first batch). A cut moves to a nearby subject
 * (prefix group) boundary when that costs little balance, so a shard seldom recomputes a prefix.
 */

export interface ShardSpec {
  index: number;
  count: number;
}

export interface WeightedBatch {
  /** Prefix group (subject + shared prefix); a cut between two batches of one group splits the group. */
  group: string;
  /** Tokens this batch computes in an unsharded run. */
  tokens: number;
}

export const PARTITION_RULE =
  'contiguous runs of the unsharded batch order (by subject), balanced by token count, cut at a subject boundary when one lies within 5% of a shard of the balanced point';

/**
 * How far (as a fraction of one shard's tokens) a cut may move to land on a subject boundary. Splitting a
 * subject costs one more computation of its few-shot prefix (well under 1% of a shard of full MMLU), so the
 * slack is small: on full 5-shot MMLU (14,042 questions, batch 8) the largest shard is 2.7% / 1.2% / 3.9% /
 * 3.2% / 8.4% over the ideal for N = 2 / 3 / 8 / 16 / 64 (a quarter-shard slack gave 17-29% for N >= 3).
 */
export const SUBJECT_BOUNDARY_SLACK = 0.05;

/** Parses "I/N" (0 <= I < N). */
export function parseShard(text: string): ShardSpec {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`--shard must look like I/N (e.g. 0/3), got "${text}"`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new Error(`--shard ${text}: N must be at least 1`);
  if (index >= count) throw new Error(`--shard ${text}: I must be in 0..${count - 1}`);
  return { index, count };
}

export const shardLabel = (s: ShardSpec) => `${s.index}/${s.count}`;

/**
 * Assigns every batch to one of `count` shards: returns the shard index of each batch (non-decreasing,
 * so each shard is a contiguous run). Deterministic: depends only on the batches' groups and weights.
 * With fewer batches than shards some shards are empty.
 */
export function partitionBatches(batches: readonly WeightedBatch[], count: number, boundarySlack = SUBJECT_BOUNDARY_SLACK): number[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`shard count must be a positive integer, got ${count}`);
  const B = batches.length;
  // before[i] = tokens of batches 0..i-1 (cut position i puts batch i in the next shard).
  const before = [0];
  for (const b of batches) before.push(before[before.length - 1] + Math.max(0, b.tokens));
  const total = before[B];
  const tolerance = (total / count) * boundarySlack;
  const isGroupBoundary = (i: number) => i === 0 || i === B || batches[i - 1].group !== batches[i].group;
  const cuts: number[] = [];
  let lastCut = 0;
  for (let k = 1; k < count; k++) {
    const target = (k * total) / count;
    // Leave at least one batch for each later shard when there are enough batches.
    const roomForAll = B - lastCut >= count - k + 1;
    const lo = roomForAll ? lastCut + 1 : lastCut;
    const hi = roomForAll ? B - (count - k) : B;
    let best = -1;
    let bestGroup = -1;
    for (let i = lo; i <= Math.min(hi, B); i++) {
      const d = Math.abs(before[i] - target);
      if (best < 0 || d < Math.abs(before[best] - target)) best = i;
      if (isGroupBoundary(i) && d <= tolerance && (bestGroup < 0 || d < Math.abs(before[bestGroup] - target))) bestGroup = i;
    }
    const cut = bestGroup >= 0 ? bestGroup : best;
    cuts.push(cut);
    lastCut = cut;
  }
  const out: number[] = [];
  let shard = 0;
  for (let i = 0; i < B; i++) {
    while (shard < cuts.length && i >= cuts[shard]) shard++;
    out.push(shard);
  }
  return out;
}
