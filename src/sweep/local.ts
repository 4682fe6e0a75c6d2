/**
 * Running a sweep's units on this machine, one after another, and merging each experiment once its shards
 * are finished (the merge step every backend shares).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mergeShards } from '../eval/merge';
import { MANIFEST, RECORDS, SUMMARY } from '../eval/runFolder';
import { acquireRunLock } from '../eval/runLock';
import { assertWritableInside } from '../shared/safeFiles';
import { experimentMerged, unitFinished, type SweepExperiment, type SweepPlan, type SweepUnit } from './plan';

export type SweepLog = (line: string) => void;

export const unitLabel = (u: SweepUnit) => `${u.experiment} shard ${u.shard}/${u.shards}`;

/**
 * Merges an experiment whose units are all finished; a no-op when it is merged already. Returns what
 * happened in words. A merge interrupted before its summary was written is redone from the shards.
 */
export function mergeExperiment(plan: SweepPlan, exp: SweepExperiment): { merged: boolean; message: string } {
  if (experimentMerged(exp, plan)) return { merged: true, message: `${exp.name}: already merged` };
  const unfinished = exp.units.map((id) => plan.units[id]).filter((u) => !unitFinished(u));
  if (unfinished.length)
    return {
      merged: false,
      message: `${exp.name}: not merged, ${unfinished.length} of ${exp.units.length} shards unfinished (${unfinished.map((u) => `${u.shard}/${u.shards}`).join(', ')})`,
    };
  // Everything written and removed below is inside the sweep folder, never through a link out of it.
  assertWritableInside(plan.sweepDir, exp.runDir);
  fs.mkdirSync(exp.runDir, { recursive: true });
  assertWritableInside(plan.sweepDir, exp.runDir);
  const lock = acquireRunLock(exp.runDir);
  try {
    for (const f of [MANIFEST, RECORDS, SUMMARY]) {
      assertWritableInside(plan.sweepDir, path.join(exp.runDir, f));
      fs.rmSync(path.join(exp.runDir, f), { force: true });
    }
    const r = mergeShards(
      exp.runDir,
      exp.units.map((id) => plan.units[id].dir),
    );
    const s = r.summary;
    return {
      merged: true,
      message: `${exp.name}: merged ${r.shards} shards, ${r.questions} questions, accuracy ${(100 * s.accuracy.micro).toFixed(1)}%, never-activated ${s.neverActivatedTotal}`,
    };
  } finally {
    lock.release();
  }
}

/** Runs one unit's eval as a child process, its output prefixed with the unit; resolves to its exit status. */
export function runUnitProcess(plan: SweepPlan, unit: SweepUnit, log: SweepLog, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(plan.node, [plan.cli, ...unit.evalArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    const prefix = `[${unitLabel(unit)}] `;
    const forward = (stream: NodeJS.ReadableStream) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        for (const l of lines) if (l.trim()) log(prefix + l);
      });
      stream.on('end', () => rest.trim() && log(prefix + rest));
    };
    forward(child.stdout!);
    forward(child.stderr!);
    const onAbort = () => child.kill('SIGTERM');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', reject);
    child.on('close', (code, sig) => {
      signal?.removeEventListener('abort', onAbort);
      resolve(code ?? (sig ? 128 : 1));
    });
  });
}

export interface LocalOutcome {
  failed: { unit: SweepUnit; status: number }[];
  skipped: number;
  ran: number;
  merges: string[];
}

/** The local backend: every unfinished unit in plan order, each experiment merged when its shards are done. */
export async function runLocal(plan: SweepPlan, log: SweepLog, signal?: AbortSignal): Promise<LocalOutcome> {
  const out: LocalOutcome = { failed: [], skipped: 0, ran: 0, merges: [] };
  const total = plan.units.length;
  let finished = 0;
  for (const exp of plan.experiments) {
    for (const id of exp.units) {
      const unit = plan.units[id];
      if (signal?.aborted) return out;
      if (unitFinished(unit)) {
        out.skipped++;
        finished++;
        log(`[${finished}/${total} units] ${unitLabel(unit)}: finished earlier, skipped`);
        continue;
      }
      out.ran++;
      const status = await runUnitProcess(plan, unit, log, signal);
      if (status === 0 && unitFinished(unit)) {
        finished++;
        log(`[${finished}/${total} units] ${unitLabel(unit)}: finished`);
      } else {
        out.failed.push({ unit, status });
        log(`${unitLabel(unit)}: eval exited with status ${status}; run the sweep again to retry it`);
      }
    }
    const m = mergeExperiment(plan, exp);
    out.merges.push(m.message);
    log(m.message);
  }
  return out;
}
