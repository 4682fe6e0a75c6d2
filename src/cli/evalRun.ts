/** Runs one evaluation from the command line (eval and experiment): Ctrl+C cancels after the batch in flight. */
import { readRegularText } from '../shared/safeFiles';
import { InputError } from '../shared/inputError';

/** A bias for every expert of the largest models is a few MB of JSON. */
const MAX_BIAS_BYTES = 64 << 20;
import * as path from 'node:path';
import type { CliContext } from './command';
import type { CliBackend } from './backend';
import { Checkpoint } from '../engines/onnxruntime/checkpoint';
import { runEvaluation, progressLine, type EvalOptions } from '../eval/runner';
import { RunLockHeldError } from '../eval/runLock';
import { killLiveWorkers } from '../engines/client/pythonWorker';
import { isEmptyIntervention, normalizeIntervention, parseBiasJson, parseMaskSpec, validateIntervention } from '../analysis/interventions';
import { EXIT_CODES, type RouterIntervention } from '../shared/protocol';

/** Exit status of an eval whose run folder another live process holds (EX_TEMPFAIL: try again later). */
export const EXIT_LOCKED = EXIT_CODES.locked;

/** Runs on `engine` (either engine, opened by the caller) and disposes of it at the end. */

export async function runEvalCommand(engine: CliBackend, opts: EvalOptions, ctx: CliContext, quiet: boolean): Promise<number> {
  const ac = new AbortController();
  const onSignal = () => {
    if (ac.signal.aborted) {
      // A second Ctrl-C (e.g. while a load hangs): stop now, and take the engine's process along rather than orphan it.
      ctx.err('stopping now');
      killLiveWorkers();
      process.exit(130);
    }
    ctx.err('\ncancelling after the batch in flight (Ctrl-C again to stop now)...');
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let lastLine = 0;
  try {
    const outcome = await runEvaluation(engine, opts, {
      signal: ac.signal,
      onLog: (m) => ctx.err(m),
      onProgress: (p) => {
        const now = Date.now();
        if (!quiet && (now - lastLine > 1000 || p.done === p.total)) {
          lastLine = now;
          ctx.err(progressLine(p));
        }
      },
    });
    const s = outcome.summary;
    ctx.err(
      `${outcome.cancelled ? 'cancelled' : s.complete ? 'done' : 'stopped'}: ${s.questions} questions, accuracy micro ${(100 * s.accuracy.micro).toFixed(1)}% ` +
        `macro ${(100 * s.accuracy.macro).toFixed(1)}%, never-activated experts (${s.tokenScope}) ${s.neverActivatedTotal}; ${path.join(outcome.runDir, 'summary.json')}`,
    );
    return outcome.cancelled ? 130 : 0;
  } catch (e) {
    // Another live process holds the run folder (e.g. a lost sweep attempt still finishing): a distinct
    // status, so a scheduler can wait and retry instead of failing the unit.
    if (e instanceof RunLockHeldError) {
      ctx.err(`moe-scope eval: ${e.message}`);
      return EXIT_LOCKED;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await engine.dispose();
  }
}

/**
 * The intervention given by `--mask-experts L:E,...` and `--router-bias FILE.json`, checked against the
 * model's config (layers, experts, at least top_k left per layer) with messages naming the option or file.
 * Undefined when neither option is given.
 */
export function interventionFromOptions(modelDir: string, maskSpec: string | undefined, biasFile: string | undefined): RouterIntervention | undefined {
  if (maskSpec === undefined && biasFile === undefined) return undefined;
  const mask = maskSpec === undefined ? [] : parseMaskSpec(maskSpec, '--mask-experts');
  let bias: [number, number, number][] = [];
  if (biasFile !== undefined) {
    const file = path.resolve(biasFile);
    let text: string;
    try {
      text = readRegularText(file, { maxBytes: MAX_BIAS_BYTES });
    } catch (e) {
      throw new Error(
        `--router-bias ${file}: cannot read it (${e instanceof InputError ? e.problem : ((e as NodeJS.ErrnoException).code ?? (e as Error).message)})`,
        {
          cause: e,
        },
      );
    }
    bias = parseBiasJson(text, file);
  }
  const arch = Checkpoint.open(path.resolve(modelDir)).arch;
  validateIntervention({ mask, bias: [] }, arch, '--mask-experts');
  if (biasFile !== undefined) validateIntervention({ mask: [], bias }, arch, `--router-bias ${path.resolve(biasFile)}`);
  const parts = [maskSpec !== undefined ? `--mask-experts ${maskSpec}` : '', biasFile !== undefined ? `--router-bias ${path.resolve(biasFile)}` : ''].filter(
    Boolean,
  );
  const iv = normalizeIntervention({ mask, bias, description: parts.join(' ') });
  validateIntervention(iv, arch, parts.join(' '));
  return isEmptyIntervention(iv) ? undefined : iv;
}
