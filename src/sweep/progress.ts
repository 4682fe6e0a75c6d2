/**
 * Per-experiment progress from a sweep's output lines (the local backend's and the Ray driver's
 * "[k/N units] <experiment> shard i/n: finished ..." and "<experiment>: merged ..." lines), for the
 * editor's task terminal. Pure: feed it lines, get back the lines worth showing.
 */

export interface ExperimentProgress {
  shardsFinished: Set<number>;
  shards: number;
  merged: boolean;
}

const UNIT_DONE = /\[(\d+)\/(\d+) units\] (\S+) shard (\d+)\/(\d+): (finished|finished earlier, skipped)/;
const MERGED = /^(\S+): (merged \d+ shards|already merged)/;

export class SweepProgress {
  readonly experiments = new Map<string, ExperimentProgress>();
  unitsFinished = 0;
  units = 0;

  /** Takes one output line; returns a progress line to show, or null when the line changes nothing. */
  consume(line: string): string | null {
    const u = UNIT_DONE.exec(line);
    if (u) {
      const [, k, n, name, shard, shards] = u;
      this.unitsFinished = Number(k);
      this.units = Number(n);
      const e = this.entry(name, Number(shards));
      e.shardsFinished.add(Number(shard));
      return `${name}: ${e.shardsFinished.size}/${e.shards} shards finished (sweep: ${this.unitsFinished}/${this.units} units)`;
    }
    const m = MERGED.exec(line.trim());
    if (m && this.experiments.has(m[1])) {
      this.experiments.get(m[1])!.merged = true;
      const merged = [...this.experiments.values()].filter((e) => e.merged).length;
      return `${m[1]}: merged (${merged} experiment${merged === 1 ? '' : 's'} merged so far)`;
    }
    return null;
  }

  private entry(name: string, shards: number): ExperimentProgress {
    let e = this.experiments.get(name);
    if (!e) {
      e = { shardsFinished: new Set(), shards, merged: false };
      this.experiments.set(name, e);
    }
    return e;
  }
}
