/**
 * A "moe-scope-eval" task definition comes from tasks.json, i.e. from the workspace: every field is
 * checked before use, so a number where a path belongs gives a message naming the field, not
 * 'The "path" argument must be of type string'. No vscode import: tests check it directly.
 */
import { isTokenScope } from '../analysis/scope';

const STRING_FIELDS = ['dataset', 'split', 'model', 'runDir'] as const;

/** The problems of a task definition, one per field ("field "shots" must be ..."); empty when sound. */
export function evalTaskDefinitionProblems(def: Record<string, unknown>): string[] {
  const problems: string[] = [];
  for (const k of STRING_FIELDS) {
    const v = def[k];
    if (v === undefined && k !== 'dataset') continue;
    if (typeof v !== 'string' || v.trim() === '' || v.includes('\0'))
      problems.push(`field "${k}" must be a non-empty string, found ${JSON.stringify(v) ?? 'nothing'}`);
  }
  if (def.shots !== undefined && !(Number.isInteger(def.shots) && (def.shots as number) >= 0 && (def.shots as number) <= 5)) {
    problems.push(`field "shots" must be an integer from 0 to 5, found ${JSON.stringify(def.shots)}`);
  }
  if (def.limit !== undefined && !(Number.isInteger(def.limit) && (def.limit as number) >= 0)) {
    problems.push(`field "limit" must be a non-negative integer, found ${JSON.stringify(def.limit)}`);
  }
  if (def.tokenScope !== undefined && !isTokenScope(def.tokenScope)) {
    problems.push(`field "tokenScope" must be "all", "question" or "answer", found ${JSON.stringify(def.tokenScope)}`);
  }
  if (def.subjects !== undefined && !(Array.isArray(def.subjects) && def.subjects.every((s) => typeof s === 'string' && s.length > 0))) {
    problems.push(`field "subjects" must be a list of subject names, found ${JSON.stringify(def.subjects)}`);
  }
  return problems;
}
