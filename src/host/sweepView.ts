/**
 * The Sweeps view (MoE Scope activity bar): every sweep under <workspace>/.moe-scope/sweeps, and under it
 * every experiment with its accuracy and never-activated count once merged (its shard count before).
 * Clicking a merged experiment opens its summary. Files are read asynchronously, never blocking the host.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { PLAN_FILE, type SweepPlan } from '../sweep/plan';
import type { RunSummary } from '../shared/protocol';
import { readRegularFileAsync } from '../shared/safeFiles';
import { demoModelLabel } from '../shared/demoLabel';

export const SWEEP_VIEW_ID = 'moeScope.sweeps';

interface SweepNode {
  kind: 'sweep';
  dir: string;
  plan: SweepPlan | null;
  error?: string;
}

interface ExperimentNode {
  kind: 'experiment';
  name: string;
  /** What sets it apart from the sweep's other experiments (the full name is in the tooltip). */
  label: string;
  runDir: string;
  summary: RunSummary | null;
  shardsFinished: number;
  shards: number;
}

type Node = SweepNode | ExperimentNode;

async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse((await readRegularFileAsync(file, { maxBytes: 64 << 20 })).toString('utf8')) as T;
  } catch {
    return null;
  }
}

export class SweepViewProvider implements vscode.TreeDataProvider<Node>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  refresh(): void {
    this.changed.fire();
  }

  dispose(): void {
    this.changed.dispose();
  }

  async getChildren(node?: Node): Promise<Node[]> {
    if (!node) return this.sweeps();
    if (node.kind === 'sweep' && node.plan) return this.experiments(node.plan);
    return [];
  }

  private async sweeps(): Promise<Node[]> {
    const out: SweepNode[] = [];
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      const root = path.join(folder.uri.fsPath, '.moe-scope', 'sweeps');
      let names: string[];
      try {
        names = (await fs.readdir(root)).sort();
      } catch {
        continue; // no sweeps in this folder
      }
      for (const name of names) {
        const dir = path.join(root, name);
        const plan = await readJson<SweepPlan>(path.join(dir, PLAN_FILE));
        if (plan?.format === 'moe-scope.sweep') out.push({ kind: 'sweep', dir, plan });
        else if (plan) out.push({ kind: 'sweep', dir, plan: null, error: `${PLAN_FILE} is not a sweep plan` });
      }
    }
    return out;
  }

  private async experiments(plan: SweepPlan): Promise<Node[]> {
    const parts = (e: SweepPlan['experiments'][number]) => [e.model.name, e.engine, `${e.shots}-shot`, e.tokenScope, e.intervention.name];
    const varying = [0, 1, 2, 3, 4].map((i) => new Set(plan.experiments.map((e) => parts(e)[i])).size > 1);
    const labelOf = (e: SweepPlan['experiments'][number]) =>
      varying.some(Boolean)
        ? parts(e)
            .filter((_, i) => varying[i])
            .join(' · ')
        : e.name;
    return Promise.all(
      plan.experiments.map(async (e): Promise<ExperimentNode> => {
        const summary = await readJson<RunSummary>(path.join(e.runDir, 'summary.json'));
        const merged = summary?.complete === true ? summary : null;
        let shardsFinished = e.units.length;
        if (!merged) {
          const done = await Promise.all(
            e.units.map(async (id) => (await readJson<RunSummary>(path.join(plan.units[id].dir, 'summary.json')))?.complete === true),
          );
          shardsFinished = done.filter(Boolean).length;
        }
        return { kind: 'experiment', name: e.name, label: labelOf(e), runDir: e.runDir, summary: merged, shardsFinished, shards: e.units.length };
      }),
    );
  }

  getTreeItem(node: Node): vscode.TreeItem {
    if (node.kind === 'sweep') {
      const item = new vscode.TreeItem(path.basename(node.dir), node.plan ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None);
      item.description = node.plan
        ? `${node.plan.experiments.length} experiments x ${node.plan.units.length / Math.max(1, node.plan.experiments.length)} shards`
        : node.error;
      item.tooltip = node.dir;
      item.iconPath = new vscode.ThemeIcon('beaker');
      return item;
    }
    const item = new vscode.TreeItem(node.label, vscode.TreeItemCollapsibleState.None);
    item.tooltip = node.name;
    if (node.summary) {
      const s = node.summary;
      item.description = `${(100 * s.accuracy.micro).toFixed(1)}% · ${s.neverActivatedTotal} never-activated · ${s.questions} q`;
      item.tooltip = `${node.name}\n${s.questions} questions, accuracy micro ${(100 * s.accuracy.micro).toFixed(1)}% / macro ${(100 * s.accuracy.macro).toFixed(1)}%\nnever-activated experts (${s.tokenScope}): ${s.neverActivatedTotal}${s.model.demo ? `\n${demoModelLabel(s.model.demoTrained)}` : ''}\n${node.runDir}`;
      item.iconPath = new vscode.ThemeIcon('pass');
      item.command = { command: 'moeScope.showSummary', title: 'Show summary', arguments: [node.runDir] };
    } else {
      item.description = `${node.shardsFinished}/${node.shards} shards finished`;
      item.iconPath = new vscode.ThemeIcon(node.shardsFinished ? 'sync' : 'circle-outline');
    }
    return item;
  }
}
