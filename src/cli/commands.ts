/** The command line's one command table (model, dataset, evaluation, sweep and experiment commands) and its help text. */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { engineSettingOption, UsageError, type CliContext, type Command } from './command';
import { MODEL_COMMANDS, precisionOption } from './modelCommands';
import { loadDataset } from '../mmlu/load';
import { EXIT_LOCKED, interventionFromOptions, runEvalCommand } from './evalRun';
import { EXPERIMENT_COMMANDS } from './experiments';
import { PRECISION_CHECK_COMMAND } from './precisionCheck';
import { ENGINE_OPTIONS, engineLog, openBackend } from './backend';
import { isTokenScope } from '../analysis/scope';
import { EXECUTION_PROVIDER_SETTINGS, type ExecutionProviderSetting } from '../shared/protocol';
import { inferenceEnvironment, describeEnvironment } from '../engines/onnxruntime/doctor';
import { webGpuProbeDiagnostics } from '../engines/onnxruntime/webgpu';
import { PROBE_DIAGNOSTICS_PREFIX } from '../engines/onnxruntime/webgpuProbeProcess';
import { parseShard, type ShardSpec } from '../eval/shard';
import { mergeShards } from '../eval/merge';
import { acquireRunLock, RunLockHeldError } from '../eval/runLock';
import { SWEEP_USAGE, sweepCommand } from './sweepCommand';
import { checkPython, chooseEngine, defaultPython, formatEnvironment } from '../engines/client/pythonWorker';

/** An integer option in [min, max], or a usage error naming the option and what it got. */
export function integerOption(name: string, raw: string | undefined, min: number, max: number): number {
  const v = raw === undefined ? NaN : Number(raw);
  if (raw === undefined || !/^\s*-?\d+\s*$/.test(raw) || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw ?? '')}`);
  }
  return v;
}

const COMMANDS: Record<string, Command> = {
  ...MODEL_COMMANDS,
  'dataset-info': {
    usage:
      'dataset-info --data PATH [--split S] [--json]\n      Count the questions and subjects of MMLU data (original CSV tree or file, cais/mmlu JSONL or Parquet).',
    async run(args, ctx) {
      const { values } = parseArgs({ args, options: { data: { type: 'string' }, split: { type: 'string' }, json: { type: 'boolean', default: false } } });
      if (!values.data) throw new UsageError('--data PATH is required');
      const ds = await loadDataset(path.resolve(values.data), { split: values.split });
      const perSplit: Record<string, number> = {};
      const subjects = new Set<string>();
      for (const q of ds.questions) {
        perSplit[q.split] = (perSplit[q.split] ?? 0) + 1;
        subjects.add(q.subject);
      }
      const info = {
        path: ds.path,
        format: ds.format,
        questions: ds.questions.length,
        subjects: subjects.size,
        splits: perSplit,
        fingerprint: ds.fingerprint,
        malformedRows: ds.issues.length,
        issues: ds.issues.slice(0, 50),
      };
      if (values.json) ctx.out(JSON.stringify(info, null, 2));
      else {
        ctx.out(
          `${info.path} (${info.format}): ${info.questions} questions, ${info.subjects} subjects; ${Object.entries(perSplit)
            .map(([s, n]) => `${s} ${n}`)
            .join(', ')}`,
        );
        for (const i of ds.issues.slice(0, 20)) ctx.out(`  malformed: ${i.file}:${i.line}: ${i.reason}`);
      }
      return 0;
    },
  },
  eval: {
    usage:
      'eval --model DIR --data PATH --out RUN_DIR [--split test] [--shots 5] [--subjects a,b] [--limit N]\n' +
      '     [--token-scope all|question|answer] [--batch-size 8] [--provider auto|cuda|webgpu|cpu] [--shard I/N]\n' +
      '     [--precision auto|fp32|fp16|bf16|int8|int4] (recorded in the manifest; a run is never resumed or merged across precisions)\n' +
      '     [--engine onnxruntime|pytorch|auto] [--python PATH (default $MOE_SCOPE_PYTHON or python3)]\n' +
      '     [--mask-experts L:E,L:E,...] [--router-bias FILE.json] [--weight-scores] [--verbose]\n' +
      '      Evaluate on MMLU; resumable (run again with the same --out); writes RUN_DIR/summary.json.\n' +
      '      --mask-experts removes experts from routing (router logit -inf before softmax and top-k);\n' +
      '      --router-bias adds {"layer": {"expert": bias}} to router logits. Both are recorded in the manifest.\n' +
      '      --shard I/N computes only shard I of N (contiguous runs of subjects balanced by token count).\n' +
      "      --weight-scores stores each expert's weights |mean|/RMS (the data-free pruning criterion) in the summary.",
    async run(args, ctx) {
      const { values } = parseArgs({
        args,
        options: {
          model: { type: 'string' },
          data: { type: 'string' },
          out: { type: 'string' },
          split: { type: 'string', default: 'test' },
          shots: { type: 'string', default: '5' },
          subjects: { type: 'string' },
          limit: { type: 'string', default: '0' },
          'token-scope': { type: 'string', default: 'answer' },
          'batch-size': { type: 'string', default: '8' },
          provider: { type: 'string', default: 'auto' },
          precision: { type: 'string' },
          cache: { type: 'string' },
          quiet: { type: 'boolean', default: false },
          shard: { type: 'string' },
          ...ENGINE_OPTIONS,
          'mask-experts': { type: 'string' },
          'router-bias': { type: 'string' },
          'weight-scores': { type: 'boolean', default: false },
        },
      });
      if (!values.model) throw new UsageError('--model DIR is required');
      if (!values.data) throw new UsageError('--data PATH is required');
      if (!values.out) throw new UsageError('--out RUN_DIR is required');
      let shard: ShardSpec | undefined;
      try {
        shard = values.shard === undefined ? undefined : parseShard(values.shard);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const shots = integerOption('shots', values.shots, 0, 5);
      const limit = integerOption('limit', values.limit, 0, 1_000_000);
      const batchSize = integerOption('batch-size', values['batch-size'], 1, 4096);
      const scope = values['token-scope'];
      if (!isTokenScope(scope)) throw new UsageError('--token-scope must be all, question or answer');
      const provider = values.provider as ExecutionProviderSetting;
      if (!EXECUTION_PROVIDER_SETTINGS.includes(provider)) throw new UsageError('--provider must be auto, cuda, webgpu or cpu');
      const intervention = interventionFromOptions(values.model!, values['mask-experts'], values['router-bias']);
      const engine = await openBackend(values.engine, values.python, engineLog(ctx, values.verbose), values.model);
      return runEvalCommand(
        engine,
        {
          modelPath: path.resolve(values.model!),
          load: { executionProvider: provider, precision: precisionOption(values.precision), cacheDir: values.cache },
          dataPath: path.resolve(values.data!),
          split: values.split!,
          shots,
          subjects: values.subjects
            ? values.subjects
                .split(',')
                .map((s) => s.trim())
                .filter(Boolean)
            : undefined,
          limitPerSubject: limit,
          tokenScope: scope,
          batchSize,
          runDir: path.resolve(values.out!),
          intervention,
          shard,
          ...(values['weight-scores'] ? { weightScores: true } : {}),
        },
        ctx,
        values.quiet!,
      );
    },
  },
  merge: {
    usage:
      'merge --out RUN_DIR SHARD_DIR...\n' +
      '      Merge the finished shards of one run (eval --shard I/N) into RUN_DIR; checks they are the complete,\n' +
      "      disjoint shards of one run (same model, data and options). Records and summary equal the unsharded run's.",
    async run(args, ctx) {
      const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { out: { type: 'string' } } });
      if (!values.out) throw new UsageError('--out RUN_DIR is required');
      if (positionals.length === 0) throw new UsageError('give the shard folders to merge');
      const out = path.resolve(values.out);
      fs.mkdirSync(out, { recursive: true });
      let lock;
      try {
        lock = acquireRunLock(out);
      } catch (e) {
        if (e instanceof RunLockHeldError) {
          ctx.err(`moe-scope merge: ${e.message}`);
          return EXIT_LOCKED;
        }
        throw e;
      }
      try {
        const r = mergeShards(out, positionals);
        const s = r.summary;
        ctx.err(
          `merged ${r.shards} shards: ${r.questions} questions, accuracy micro ${(100 * s.accuracy.micro).toFixed(1)}%, never-activated experts (${s.tokenScope}) ${s.neverActivatedTotal}; ${path.join(r.outDir, 'summary.json')}`,
        );
        return 0;
      } finally {
        lock.release();
      }
    },
  },
  sweep: {
    usage: SWEEP_USAGE,
    run: (args, ctx) => sweepCommand(args, ctx),
  },
  doctor: {
    usage:
      'doctor --model DIR [--provider auto|cuda|webgpu|cpu] [--precision auto|fp32|fp16|bf16|int8|int4] [--engine onnxruntime|pytorch|auto] [--python PATH] [--json] [--verbose]\n' +
      '      Which engine, execution provider and adapter the model runs on and why, the graph dtype, and the\n' +
      '      op types ONNX Runtime places on the CPU (cpuOpTypes, with node counts).',
    async run(args, ctx) {
      const { values } = parseArgs({
        args,
        options: {
          model: { type: 'string' },
          provider: { type: 'string', default: 'auto' },
          precision: { type: 'string' },
          engine: { type: 'string', default: 'onnxruntime' },
          python: { type: 'string' },
          cache: { type: 'string' },
          json: { type: 'boolean', default: false },
          verbose: { type: 'boolean', default: false },
        },
      });
      if (!values.model) throw new UsageError('--model DIR is required');
      const provider = values.provider as ExecutionProviderSetting;
      if (!EXECUTION_PROVIDER_SETTINGS.includes(provider)) throw new UsageError(`--provider must be auto, cuda, webgpu or cpu, not "${provider}"`);
      const engine = engineSettingOption(values.engine as string);
      const report = await inferenceEnvironment(path.resolve(values.model), {
        provider,
        engine,
        precision: precisionOption(values.precision),
        python: values.python,
        cacheDir: values.cache,
      });
      ctx.out(values.json ? JSON.stringify(report, null, 2) : describeEnvironment(report));
      const diagnostics = webGpuProbeDiagnostics();
      if (values.verbose && diagnostics) ctx.err(PROBE_DIAGNOSTICS_PREFIX + diagnostics);
      return 0;
    },
  },
  ...EXPERIMENT_COMMANDS,
  ...PRECISION_CHECK_COMMAND,
};

/** What the inference environment offers: the PyTorch engine's Python and ONNX Runtime's providers. */
async function environmentReport(python: string | undefined): Promise<Record<string, unknown>> {
  const interpreter = defaultPython(python);
  const env = await checkPython(interpreter);
  let backends: string[] = [];
  let ortError: string | undefined;
  try {
    const ort = await import('onnxruntime-node');
    backends = (ort as unknown as { listSupportedBackends?: () => { name: string; bundled: boolean }[] })
      .listSupportedBackends?.()
      .map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`) ?? ['cpu'];
  } catch (e) {
    ortError = (e as Error).message;
  }
  return { python: env, onnxruntime: { backends, error: ortError }, auto: chooseEngine(env) };
}

COMMANDS.env = {
  usage:
    'env [--python PATH] [--json]\n      What the inference environment offers: Python, torch, transformers, devices and memory, ONNX Runtime providers, and the engine "auto" picks.',
  async run(args, ctx) {
    const { values } = parseArgs({ args, options: { python: { type: 'string' }, json: { type: 'boolean', default: false } } });
    const report = await environmentReport(values.python);
    ctx.out(values.json ? JSON.stringify(report, null, 2) : formatEnvironment(report));
    return 0;
  },
};

/** The help text's command list: every command's usage, in table order. */
export function commandTable(): string {
  return Object.values(COMMANDS)
    .map((c) => `  ${c.usage}\n`)
    .join('');
}

/** One command's usage (null: no such command). */
export function commandUsage(name: string): string | null {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name].usage : null;
}

/** `--help` or `-h` among a command's arguments (before a `--` that ends the options). */
export function asksForHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

/** node:util parseArgs's errors (unknown option, missing value, stray positional) are usage errors too. */
function parseArgsProblem(e: unknown): string | null {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) return null;
  const message = (e as Error).message;
  const unknown = /^Unknown option '([^']+)'/.exec(message);
  if (unknown) return `unknown option ${unknown[1]}`;
  const positional = /^Unexpected argument '([^']+)'/.exec(message);
  if (positional) return `unexpected argument ${JSON.stringify(positional[1])}`;
  return message.replace(/\.$/, '');
}

/**
 * Runs a command of the table (null: no such command). `--help`/`-h` prints its usage (exit 0); a usage
 * error, including an unknown option, is printed with the command's usage (exit 2).
 */
export async function runCommand(name: string, args: string[], ctx: CliContext): Promise<number | null> {
  if (!Object.hasOwn(COMMANDS, name)) return null;
  const c = COMMANDS[name];
  if (asksForHelp(args)) {
    ctx.out(`moe-scope ${c.usage}`);
    return 0;
  }
  try {
    return await c.run(args, ctx);
  } catch (e) {
    const problem = e instanceof UsageError ? e.message : parseArgsProblem(e);
    if (problem !== null) {
      ctx.err(`moe-scope ${name}: ${problem}\n\n  ${c.usage}\n\nmoe-scope help ${name} prints this usage.`);
      return 2;
    }
    throw e;
  }
}
