/**
 * Pruning plans on the demo model (the bundled dist/cli.js; needs `node esbuild.mjs` first): a baseline run at
 * the answer position, then every criterion's scores recomputed here from the run's per-question records
 * (answer-position experts, applied weights and unweighted output norms) and, for the weights criterion,
 * straight from the checkpoint's tensors; the plans `experiment --prune-by ... --dry-run` prints must be the
 * ones a plain sort of those independent values gives.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tempDir, DEMO_CORPUS } from '../support/models';
import { demoEvalArgs, runCli } from '../support/cli';
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import type { RouterIntervention, RunSummary } from '../../src/shared/protocol';
import type { QuestionResult } from '../../src/eval/runFolder';
import type { PruningPlan } from '../../src/analysis/pruningPlans';

const run = (args: string[]) => runCli(args);
const work = tempDir('prune-plans');
const model = path.join(work, 'model');
const cache = path.join(work, 'cache');
const base = path.join(work, 'base');
const common = ['--provider', 'cpu', '--cache', cache, '--quiet'];

function questionsOf(dir: string): QuestionResult[] {
  return fs
    .readFileSync(path.join(dir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => (JSON.parse(l) as { questions: QuestionResult[] }).questions);
}

/** count, gate, man, msan per [layer][expert] from the per-question records alone. */
function scoresFromRecords(questions: QuestionResult[], L: number, E: number) {
  const grid = () => Array.from({ length: L }, () => new Array<number>(E).fill(0));
  const count = grid();
  const gate = grid();
  const normSum = grid();
  const normSq = grid();
  for (const q of questions) {
    assert.ok(q.answerWeights && q.answerNorms, `question ${q.id} records its answer-position weights and norms`);
    for (let l = 0; l < L; l++) {
      q.answerExperts[l]!.forEach((e, s) => {
        count[l]![e]!++;
        gate[l]![e]! += q.answerWeights![l]![s]!;
        normSum[l]![e]! += q.answerNorms![l]![s]!;
        normSq[l]![e]! += q.answerNorms![l]![s]! ** 2;
      });
    }
  }
  const man = normSum.map((row, l) => row.map((v, e) => (count[l]![e]! ? v / count[l]![e]! : 0)));
  const msan = normSq.map((row, l) => row.map((v, e) => (count[l]![e]! ? v / count[l]![e]! : 0)));
  return { count, gate, man, msan };
}

/** |mean| / RMS over an expert's gate, up and down weights, read tensor by tensor. */
function weightsCriterion(dir: string, L: number, E: number): number[][] {
  const ck = Checkpoint.open(dir);
  return Array.from({ length: L }, (_, l) =>
    Array.from({ length: E }, (_, e) => {
      let sum = 0;
      let sq = 0;
      let n = 0;
      for (const m of ['gate_proj', 'up_proj', 'down_proj']) {
        const w = ck.readFloat32(`model.layers.${l}.mlp.experts.${e}.${m}.weight`);
        for (const x of w) {
          sum += x;
          sq += x * x;
        }
        n += w.length;
      }
      return Math.abs(sum / n) / Math.sqrt(sq / n);
    }),
  );
}

/** The lowest n per layer by score (ties: lower count, then lower id), never below keep experts. */
function perLayerMask(scores: number[][], count: number[][], ratio: number, keep: number): [number, number][] {
  return scores.flatMap((row, l) => {
    const n = Math.min(Math.floor(ratio * row.length), row.length - keep);
    const order = row.map((_, e) => e).sort((a, b) => row[a]! - row[b]! || count[l]![a]! - count[l]![b]! || a - b);
    return order
      .slice(0, n)
      .sort((a, b) => a - b)
      .map((e) => [l, e] as [number, number]);
  });
}

function globalMask(scores: number[][], count: number[][], ratio: number, keep: number): [number, number][] {
  const E = scores[0]!.length;
  const all = scores.flatMap((row, l) => row.map((s, e) => ({ l, e, s, c: count[l]![e]! })));
  all.sort((a, b) => a.s - b.s || a.c - b.c || a.l - b.l || a.e - b.e);
  const perLayer = new Array<number>(scores.length).fill(0);
  const out: [number, number][] = [];
  let budget = Math.floor(ratio * scores.length * E);
  for (const x of all) {
    if (budget === 0) break;
    if (perLayer[x.l]! >= E - keep) continue;
    perLayer[x.l]!++;
    out.push([x.l, x.e]);
    budget--;
  }
  return out.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

test('plans from every criterion match the scores recomputed from the run records and the checkpoint', () => {
  assert.equal(run(['make-demo-model', '--out', model, '--corpus', DEMO_CORPUS]).status, 0);
  const e = run(demoEvalArgs({ model, out: base, cache, shots: 0, limit: 3 }, ['--subjects', 'marketing,world_religions', '--weight-scores']));
  assert.equal(e.status, 0, e.stderr);
  const summary = JSON.parse(fs.readFileSync(path.join(base, 'summary.json'), 'utf8')) as RunSummary;
  const { numLayers: L, numExperts: E, topK: K } = summary.model;
  assert.equal(summary.tokenScope, 'answer');
  const questions = questionsOf(base);
  assert.equal(questions.length, 6);
  const ind = scoresFromRecords(questions, L, E);

  // The summary's folded scores equal the per-question values summed here.
  for (let l = 0; l < L; l++) {
    const s = summary.layers[l]!.expertScores!;
    assert.ok(s, `layer ${l} has expertScores`);
    assert.deepEqual(summary.layers[l]!.activationCounts, ind.count[l]);
    assert.deepEqual(s.outputNormCount, ind.count[l], 'every assignment had its norm measured');
    for (let x = 0; x < E; x++) {
      assert.ok(Math.abs(s.gateWeighted[x]! - ind.gate[l]![x]!) < 1e-9, `gate-weighted count of layer ${l} expert ${x}`);
      assert.ok(Math.abs((s.meanOutputNorm[x] ?? 0) - ind.man[l]![x]!) < 1e-9, `MAN of layer ${l} expert ${x}`);
      assert.ok(Math.abs((s.meanSquaredOutputNorm[x] ?? 0) - ind.msan[l]![x]!) < 1e-9, `MSAN of layer ${l} expert ${x}`);
      if (ind.count[l]![x]! > 0) assert.ok(ind.man[l]![x]! > 0, 'a chosen expert of random weights has a non-zero output');
    }
  }
  // Norms are not a function of the count: MAN must order some layer's used experts differently than the count does.
  assert.ok(
    ind.man.some((row, l) => {
      const used = row.map((_, x) => x).filter((x) => ind.count[l]![x]! > 0);
      return used.some((a) => used.some((b) => ind.count[l]![a]! < ind.count[l]![b]! && row[a]! > row[b]!));
    }),
  );

  const weights = weightsCriterion(model, L, E);
  // eval --weight-scores stored the same criterion in the summary.
  for (let l = 0; l < L; l++)
    for (let x = 0; x < E; x++)
      assert.ok(Math.abs(summary.layers[l]!.expertScores!.weightsCriterion![x]! - weights[l]![x]!) < 1e-9, `weights criterion of layer ${l} expert ${x}`);
  const independent = { ...ind, weights };
  const masks = new Set<string>();
  for (const criterion of ['count', 'gate', 'man', 'msan', 'weights'] as const) {
    for (const [mode, ratio] of [
      // The demo routes the answer position to few experts (about 11 of 64 per layer here): cut into the used ones,
      // since the unused ones tie at 0 under every data criterion.
      ['per-layer', 0.875],
      ['global', 0.85],
    ] as const) {
      const out = path.join(work, `x-${criterion}-${mode}`);
      const r = run(['experiment', '--baseline', base, '--prune-by', criterion, '--ratio', String(ratio), `--${mode}`, '--out', out, '--dry-run', ...common]);
      assert.equal(r.status, 0, r.stderr);
      const printed = JSON.parse(r.stdout) as { intervention: RouterIntervention; plan: PruningPlan };
      const expected =
        mode === 'per-layer' ? perLayerMask(independent[criterion], ind.count, ratio, K) : globalMask(independent[criterion], ind.count, ratio, K);
      assert.deepEqual(printed.intervention.mask, expected, `${criterion} ${mode}`);
      assert.equal(printed.plan.totalPruned, expected.length);
      // The preview's routing mass: the pruned experts' share of the layer's summed gate weights.
      for (const pl of printed.plan.layers) {
        const total = ind.gate[pl.layer]!.reduce((a, b) => a + b, 0);
        const part = pl.pruned.reduce((a, x) => a + ind.gate[pl.layer]![x]!, 0);
        assert.ok(Math.abs(pl.routingMass - part / total) < 1e-9, `routing mass of layer ${pl.layer}`);
      }
      masks.add(JSON.stringify(expected));
    }
  }
  // The criteria disagree, or the comparison above would not tell them apart.
  assert.ok(masks.size >= 8, `only ${masks.size} distinct plans of 10`);

  // A threshold plan keeps at least --keep experts per layer.
  const t = run([
    'experiment',
    '--baseline',
    base,
    '--prune-by',
    'count',
    '--threshold',
    '1',
    '--keep',
    '60',
    '--out',
    path.join(work, 'x-t'),
    '--dry-run',
    ...common,
  ]);
  assert.equal(t.status, 0, t.stderr);
  const tp = JSON.parse(t.stdout) as { plan: PruningPlan };
  for (const pl of tp.plan.layers) {
    const unused = ind.count[pl.layer]!.filter((c) => c < 1).length;
    assert.equal(pl.pruned.length, Math.min(unused, 4), `layer ${pl.layer}`);
    assert.ok(pl.pruned.every((x) => ind.count[pl.layer]![x] === 0));
  }
  const bad = run(['experiment', '--baseline', base, '--prune-by', 'norm', '--ratio', '0.5', '--out', path.join(work, 'x-bad'), '--dry-run', ...common]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--prune-by must be one of man, msan, gate, count, weights|--prune-by must be one of count, gate, man, msan, weights/);
});
