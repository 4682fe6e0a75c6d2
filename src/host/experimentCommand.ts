/**
 * "MoE: New experiment from this run...": pick a rule (prune never-activated, prune below a count, prune
 * chosen experts, steer toward high-accuracy experts), preview how many experts each layer loses or has
 * steered, and run it as a resumable task; when it finishes the comparison with the baseline opens.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { readSummary } from '../eval/runFolder';
import {
  deriveIntervention,
  describeIntervention,
  biasedPerLayer,
  maskedPerLayer,
  parseMaskSpec,
  InterventionError,
  type ExperimentSpec,
} from '../analysis/interventions';
import { EVAL_TASK_TYPE, experimentFolderName, type EvalTaskDefinition, type EvalTaskProvider } from './evalTask';
import type { RouterIntervention, RunSummary } from '../shared/protocol';
import { criterionUnavailable, derivePruningPlan, PRUNE_CRITERION_LABELS, type PruneCriterion, type PruningPlan } from '../analysis/pruningPlans';

type RuleItem = vscode.QuickPickItem & { rule: 'never' | 'below' | 'chosen' | 'steer' | 'score' };

async function pickSpec(summary: RunSummary): Promise<ExperimentSpec | undefined> {
  const L = summary.model.numLayers;
  const items: RuleItem[] = [
    {
      rule: 'never',
      label: '$(trash) Prune never-activated experts',
      description: `${summary.neverActivatedTotal} experts in ${summary.layers.filter((l) => l.neverActivated.length).length} of ${L} layers`,
      detail: `Mask every expert this run never chose (${summary.tokenScope} scope).`,
    },
    { rule: 'below', label: '$(filter) Prune rarely activated experts...', detail: 'Mask every expert with fewer than N activations in this run.' },
    { rule: 'chosen', label: '$(edit) Prune chosen experts...', detail: 'Mask the experts you list as LAYER:EXPERT pairs.' },
    {
      rule: 'score',
      label: '$(list-ordered) Prune the lowest-scoring experts...',
      detail: 'By activation count, gate-weighted count, MAN or MSAN: the lowest fraction per layer or over all layers.',
    },
    {
      rule: 'steer',
      label: '$(arrow-up) Steer toward high-accuracy experts...',
      detail: "Add a bias to the router logits of each layer's most accurate experts.",
    },
  ];
  const pick = await vscode.window.showQuickPick(items, {
    title: 'MoE Scope: new experiment',
    placeHolder: 'What should the experiment change?',
    // A wizard of several steps: a webview taking the focus (a trace following the cursor) must not cancel it.
    ignoreFocusOut: true,
  });
  if (!pick) return undefined;
  const number = async (prompt: string, value: string, check: (n: number) => string | undefined) => {
    const v = await vscode.window.showInputBox({
      title: 'MoE Scope: new experiment',
      prompt,
      value,
      ignoreFocusOut: true,
      validateInput: (s) => check(Number(s)),
    });
    return v === undefined ? undefined : Number(v);
  };
  switch (pick.rule) {
    case 'score': {
      const criteria = (['count', 'gate', 'man', 'msan'] as PruneCriterion[]).map((c) => ({
        label: PRUNE_CRITERION_LABELS[c],
        description: criterionUnavailable(summary, c) ?? '',
        criterion: c,
      }));
      const c = await vscode.window.showQuickPick(
        criteria.filter((x) => !x.description),
        { title: 'MoE Scope: new experiment', placeHolder: 'Score to prune by (lowest first)', ignoreFocusOut: true },
      );
      if (!c) return undefined;
      const ratio = await number('Fraction of experts to remove, in (0, 1)', '0.25', (n) => (n > 0 && n < 1 ? undefined : 'a fraction in (0, 1)'));
      if (ratio === undefined) return undefined;
      const mode = await vscode.window.showQuickPick(
        [
          { label: 'per layer', description: 'the lowest fraction of every layer', mode: 'per-layer' as const },
          { label: 'over all layers', description: 'the lowest (layer, expert) pairs ranked together', mode: 'global' as const },
        ],
        { title: 'MoE Scope: new experiment', ignoreFocusOut: true },
      );
      return mode ? { kind: 'prune-by', plan: { criterion: c.criterion, mode: mode.mode, ratio } } : undefined;
    }
    case 'never':
      return { kind: 'prune-never-activated' };
    case 'below': {
      const n = await number('Mask experts with fewer activations than', '2', (n) => (Number.isInteger(n) && n >= 1 ? undefined : 'a positive integer'));
      return n === undefined ? undefined : { kind: 'prune-below-count', count: n };
    }
    case 'chosen': {
      const v = await vscode.window.showInputBox({
        title: 'MoE Scope: new experiment',
        prompt: 'Experts to mask, as LAYER:EXPERT pairs separated by commas',
        placeHolder: '0:3,5:17',
        ignoreFocusOut: true,
        validateInput: (s) => {
          try {
            parseMaskSpec(s, 'experts');
            return undefined;
          } catch (e) {
            return (e as Error).message;
          }
        },
      });
      return v === undefined ? undefined : { kind: 'prune', experts: parseMaskSpec(v, 'experts') };
    }
    case 'steer': {
      const p = await number('Fraction of experts per layer to steer toward (by per-expert accuracy), in (0, 1]', '0.1', (n) =>
        n > 0 && n <= 1 ? undefined : 'a fraction in (0, 1]',
      );
      if (p === undefined) return undefined;
      const b = await number('Bias added to their router logits', '1', (n) => (Number.isFinite(n) && n !== 0 ? undefined : 'a non-zero number'));
      return b === undefined ? undefined : { kind: 'steer-top-accuracy', fraction: p, bias: b };
    }
  }
}

/** The preview: one row per layer with what changes there; the first item runs the experiment. */
async function confirm(iv: RouterIntervention, summary: RunSummary, plan?: PruningPlan): Promise<boolean> {
  const L = summary.model.numLayers;
  const E = summary.model.numExperts;
  const masked = maskedPerLayer(iv, L);
  const biased = biasedPerLayer(iv, L);
  const run = { label: '$(play) Run experiment', description: describeIntervention(iv, L), run: true };
  const rows = masked.map((m, l) => ({
    label: `layer ${l}`,
    description:
      [m ? `${m} of ${E} experts masked (${E - m} left)` : '', biased[l] ? `${biased[l]} experts steered` : ''].filter(Boolean).join(', ') || 'unchanged',
    run: false,
    // A pruning plan also says which experts and how much of the run's routing mass they carried.
    ...(plan?.layers[l]
      ? {
          detail: `${(100 * plan.layers[l].routingMass).toFixed(2)}% of the routing mass; experts ${[...plan.layers[l].pruned].sort((a, b) => a - b).join(', ') || 'none'}`,
        }
      : {}),
  }));
  const pick = await vscode.window.showQuickPick([run, { label: 'per layer', kind: vscode.QuickPickItemKind.Separator, run: false }, ...rows], {
    title: `MoE Scope: experiment on ${summary.questions} questions (${summary.model.numLayers} layers x ${E} experts, top-${summary.model.topK})`,
    placeHolder: 'Preview: what the experiment changes per layer. Choose "Run experiment" to start.',
    ignoreFocusOut: true,
  });
  return !!pick?.run;
}

export async function newExperiment(runDir: string, tasks: EvalTaskProvider, folder: vscode.WorkspaceFolder): Promise<void> {
  let summary: RunSummary | null;
  try {
    summary = readSummary(runDir);
  } catch (e) {
    void vscode.window.showErrorMessage(`MoE Scope: cannot read ${path.join(runDir, 'summary.json')}: ${(e as Error).message}`);
    return;
  }
  if (!summary) {
    void vscode.window.showErrorMessage(`MoE Scope: ${path.basename(runDir)} has no summary yet.`);
    return;
  }
  if (!summary.complete) {
    void vscode.window.showErrorMessage(
      `MoE Scope: ${path.basename(runDir)} is not complete (${summary.questions} questions so far); run its evaluation again to finish it, then start an experiment.`,
    );
    return;
  }
  const spec = await pickSpec(summary);
  if (!spec) return;
  let iv: RouterIntervention;
  try {
    iv = deriveIntervention(summary, spec, `run ${path.basename(runDir)}`);
  } catch (e) {
    if (e instanceof InterventionError) {
      void vscode.window.showErrorMessage(`MoE Scope: ${e.message}`);
      return;
    }
    throw e;
  }
  if (!(await confirm(iv, summary, spec.kind === 'prune-by' ? derivePruningPlan(summary, spec.plan, spec.weightScores) : undefined))) return;
  const def: EvalTaskDefinition = { type: EVAL_TASK_TYPE, dataset: summary.dataset.path, experiment: { baseline: runDir, spec } };
  await vscode.tasks.executeTask(tasks.makeTask(def, folder, `experiment ${experimentFolderName(runDir, spec)}`));
}
