/**
 * A flipped question's prompt rebuilt exactly as its run scored it (same data, split, shot pool and the shots
 * the record says it used), for tracing it under both compared runs' interventions. No vscode import: the
 * comparison panel supplies the engine.
 */
import * as path from 'node:path';
import { readManifest, readQuestionResults, RunFolderError } from '../eval/runFolder';
import { selectQuestions } from '../eval/runner';
import { buildPrompt } from '../mmlu/prompt';
import type { RouterIntervention } from '../shared/protocol';

export interface FlippedPrompt {
  text: string;
  modelPath: string;
}

export async function flippedPrompt(runDir: string, questionId: string): Promise<FlippedPrompt> {
  const manifest = readManifest(runDir);
  if (!manifest) throw new RunFolderError(path.join(runDir, 'manifest.json'), 'not found');
  const record = readQuestionResults(runDir).find((q) => q.id === questionId);
  if (!record) throw new RunFolderError(path.join(runDir, 'records.jsonl'), `has no question ${questionId}`);
  const { questions, dev } = await selectQuestions(
    manifest.dataset.path,
    manifest.dataset.split,
    manifest.subjects ?? undefined,
    manifest.limitPerSubject,
    () => {},
  );
  const q = questions.find((x) => x.id === questionId);
  if (!q) throw new RunFolderError(manifest.dataset.path, `no longer holds question ${questionId}`);
  const pool = dev.filter((d) => d.subject === q.subject);
  return { text: buildPrompt(q, pool, record.shotsUsed).text, modelPath: manifest.model.path };
}

/** The intervention a run was made under (undefined: the unmodified model). */
export function runIntervention(runDir: string): RouterIntervention | undefined {
  return readManifest(runDir)?.intervention ?? undefined;
}
