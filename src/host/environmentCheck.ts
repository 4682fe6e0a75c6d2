/**
 * "MoE: Check inference environment" without the vscode module: what it shows and in which order, with
 * the window and the probes passed in, so that a unit test can drive it with fakes.
 */

export interface EnvironmentCheckDeps {
  resolvePython(): Promise<{ python: string; source: string }>;
  /** `moe-scope env --json --python PYTHON`, parsed. */
  environmentReport(python: string): Promise<Record<string, unknown>>;
  /** Forget the cached probe of PYTHON, so that the next load sees what was just installed. */
  reprobe(python: string): void;
  /** "ENGINE (why)", or why no engine can be chosen. */
  engineChoice(): Promise<string>;
  configuredEngine(): string;
  formatEnvironment(report: Record<string, unknown>): string;
  /** A progress notification titled TITLE, open until TASK settles. */
  withProgress<T>(title: string, task: () => Promise<T>): PromiseLike<T>;
  showError(message: string): void;
  /** The result notification; resolves true when the user asks for the details. */
  showResult(summary: string): PromiseLike<boolean>;
  log(text: string): void;
  showLog(): void;
}

export interface EnvironmentCheckResult {
  summary: string;
  details: string;
}

export async function checkEnvironment(deps: EnvironmentCheckDeps): Promise<EnvironmentCheckResult | null> {
  const { python, source } = await deps.resolvePython();
  // The progress notification covers the check only: it must close before the result is shown, because
  // showing the result waits for the user (a notification left open said "checking..." after the answer).
  const result = await deps.withProgress(`MoE Scope: checking ${python}...`, async (): Promise<EnvironmentCheckResult | null> => {
    let report: Record<string, unknown>;
    try {
      report = await deps.environmentReport(python);
      deps.reprobe(python);
    } catch (e) {
      deps.showError(`MoE Scope: the environment check failed: ${(e as Error).message}`);
      return null;
    }
    let choice: string;
    try {
      choice = await deps.engineChoice();
    } catch (e) {
      choice = (e as Error).message;
    }
    const details = `${deps.formatEnvironment(report)}\nPython chosen from: ${source}\nmoeScope.engine = ${deps.configuredEngine()}: ${choice}`;
    return { summary: `MoE Scope: engine ${choice.split(' (')[0]}. ${details.split('\n')[0]}`, details };
  });
  if (!result) return null;
  deps.log(`inference environment:\n${result.details}`);
  if (await deps.showResult(result.summary)) deps.showLog();
  return result;
}
