/**
 * A sweep SPEC (JSON): the experiments to run, as the cross product of models x engines x shots x token
 * scopes x interventions, each evaluated in `shards` shards. Every field is checked here, and a problem
 * is reported with the file and the field's JSON path.
 *
 * Interventions are passed through to `moe-scope eval` as its flags (--mask-experts L:E,..., --router-bias
 * FILE, and any further flags of derived interventions in `evalArgs`), so the sweep needs no change when
 * eval learns a new intervention.
 */
import { parsePruningGrid, type PruningGrid } from './pruningGrid';
import type { PruneCriterion } from '../analysis/pruningPlans';
import * as fs from 'node:fs';
import { readRegularText } from '../shared/safeFiles';
import { InputError } from '../shared/inputError';

const MAX_SPEC_BYTES = 4 << 20;
export const MAX_SWEEP_UNITS = 100_000;
import * as path from 'node:path';
import { ENGINE_KINDS, PRECISION_SETTINGS, type EngineKind, type PrecisionSetting, type TokenScope } from '../shared/protocol';
import { isTokenScope } from '../analysis/scope';

/** The engines of `moe-scope eval --engine`. */
export type EngineName = EngineKind;
/** The providers of `moe-scope eval --provider`. */
export const PROVIDERS = ['auto', 'cuda', 'webgpu', 'cpu'] as const;

export interface SweepModel {
  name: string;
  /** Absolute path of the checkpoint folder. */
  path: string;
}

export interface Intervention {
  name: string;
  /** "L:E,L:E,...": experts to mask (eval --mask-experts). */
  maskExperts?: string;
  /** Absolute path of a router-bias file (eval --router-bias). */
  routerBias?: string;
  /** Further eval flags of a derived intervention (e.g. prune or steer), passed as given. */
  evalArgs?: string[];
  /** Made by the SPEC's pruning grid (src/sweep/pruningGrid.ts): which plan the mask is. */
  pruning?: { criterion: PruneCriterion; ratio: number; removed: number; baseline: string };
}

export interface SweepResources {
  /** CPUs per unit (Ray num_cpus, Slurm --cpus-per-task). */
  cpus: number;
  /** GPUs per unit (Ray num_gpus, Slurm --gres=gpu:N); default 1 for PyTorch-engine units, 0 otherwise. */
  gpus?: number;
  /** Slurm only: --mem, --time, --partition, --account. */
  memory?: string;
  time?: string;
  partition?: string;
  account?: string;
}

export interface SweepSpec {
  /** Absolute path of the SPEC file it was read from. */
  file: string;
  data: string;
  split: string;
  subjects: string[] | null;
  limit: number;
  batchSize: number;
  shards: number;
  provider: (typeof PROVIDERS)[number];
  cache: string | null;
  /** Weight precision of every unit (eval --precision); auto lets each unit choose what fits its machine. */
  precision: PrecisionSetting;
  /** Python for PyTorch-engine units (eval --python); null: eval's default ($MOE_SCOPE_PYTHON or python3). */
  python: string | null;
  models: SweepModel[];
  engines: EngineName[];
  shots: number[];
  tokenScopes: TokenScope[];
  interventions: Intervention[];
  resources: SweepResources;
  /** Pruning plans (criterion x ratio) from a finished baseline run; expanded into interventions by expandPruningGrid. */
  pruning?: PruningGrid;
}

export class SpecError extends Error {}

const KNOWN_FIELDS = [
  'data',
  'split',
  'subjects',
  'limit',
  'batchSize',
  'shards',
  'provider',
  'cache',
  'precision',
  'python',
  'models',
  'engines',
  'shots',
  'tokenScopes',
  'interventions',
  'resources',
  'pruning',
];
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$/;
const MASK = /^\d+:\d+(,\d+:\d+)*$/;

/** Reads and validates a SPEC file; relative paths in it are relative to the file's folder. */
export function readSpec(file: string): SweepSpec {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readRegularText(abs, { maxBytes: MAX_SPEC_BYTES });
  } catch (e) {
    throw new SpecError(
      `${abs}: cannot read the SPEC file (${e instanceof InputError ? e.problem : ((e as NodeJS.ErrnoException).code ?? (e as Error).message)})`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SpecError(`${abs}: not valid JSON (${(e as Error).message})`);
  }
  return parseSpec(json, abs);
}

export function parseSpec(json: unknown, file: string): SweepSpec {
  const fail = (field: string, problem: string): never => {
    throw new SpecError(`${file}: field "${field}" ${problem}`);
  };
  if (!isObject(json)) fail('(top level)', 'must be a JSON object');
  const o = json as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KNOWN_FIELDS.includes(k)) fail(k, `is not a SPEC field (known: ${KNOWN_FIELDS.join(', ')})`);
  const dir = path.dirname(file);
  const str = (field: string, v: unknown): string => (typeof v === 'string' && v.trim() ? v : fail(field, `must be a non-empty string, got ${show(v)}`));
  const int = (field: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number =>
    typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max
      ? v
      : fail(field, `must be an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}, got ${show(v)}`);
  const list = (field: string, v: unknown): unknown[] => (Array.isArray(v) && v.length > 0 ? v : fail(field, `must be a non-empty array, got ${show(v)}`));
  const optional = <T>(field: string, parse: (f: string, v: unknown) => T, fallback: T): T => (o[field] === undefined ? fallback : parse(field, o[field]));
  const existing = (field: string, p: string, kind: 'file' | 'dir' | 'any'): string => {
    const abs = path.resolve(dir, p);
    if (!fs.existsSync(abs)) fail(field, `names ${abs}, which does not exist`);
    const isDir = fs.statSync(abs).isDirectory();
    if (kind === 'dir' && !isDir) fail(field, `names ${abs}, which is not a folder`);
    if (kind === 'file' && isDir) fail(field, `names ${abs}, which is a folder, not a file`);
    return abs;
  };
  const unique = <T>(field: string, values: T[], key: (v: T) => string) => {
    const seen = new Set<string>();
    values.forEach((v, i) => {
      const k = key(v);
      if (seen.has(k)) fail(`${field}[${i}]`, `repeats ${JSON.stringify(k)}`);
      seen.add(k);
    });
  };

  const data = existing('data', str('data', o.data), 'any');
  const split = optional('split', str, 'test');
  const subjects = optional('subjects', (f, v) => list(f, v).map((s, i) => str(`${f}[${i}]`, s)), null as string[] | null);
  const limit = optional('limit', (f, v) => int(f, v, 0), 0);
  const batchSize = optional('batchSize', (f, v) => int(f, v, 1, 4096), 8);
  const shards = optional('shards', (f, v) => int(f, v, 1, 100_000), 1);
  const provider = optional(
    'provider',
    (f, v) =>
      (PROVIDERS as readonly unknown[]).includes(v)
        ? (v as SweepSpec['provider'])
        : fail(f, `must be one of ${PROVIDERS.map((p) => `"${p}"`).join(', ')}, got ${show(v)}`),
    'auto' as SweepSpec['provider'],
  );
  const cache = optional('cache', (f, v) => path.resolve(dir, str(f, v)), null as string | null);
  const precision = optional(
    'precision',
    (f, v) =>
      (PRECISION_SETTINGS as readonly unknown[]).includes(v)
        ? (v as PrecisionSetting)
        : fail(f, `must be one of ${PRECISION_SETTINGS.map((p) => `"${p}"`).join(', ')}, got ${show(v)}`),
    'auto' as PrecisionSetting,
  );
  const python = optional('python', (f, v) => str(f, v), null as string | null);

  const models = list('models', o.models).map((m, i): SweepModel => {
    const f = `models[${i}]`;
    if (typeof m === 'string') return { name: path.basename(path.resolve(dir, m)), path: existing(f, m, 'dir') };
    if (!isObject(m)) fail(f, `must be a path or {"name", "path"}, got ${show(m)}`);
    const mm = m as Record<string, unknown>;
    for (const k of Object.keys(mm)) if (k !== 'name' && k !== 'path') fail(`${f}.${k}`, 'is not a model field (known: name, path)');
    const p = existing(`${f}.path`, str(`${f}.path`, mm.path), 'dir');
    const name = mm.name === undefined ? path.basename(p) : str(`${f}.name`, mm.name);
    return { name, path: p };
  });
  models.forEach(
    (m, i) =>
      NAME.test(m.name) || fail(`models[${i}].name`, `must be 1-80 letters, digits, "_", ".", "+" or "-" (it names folders), got ${JSON.stringify(m.name)}`),
  );
  unique('models', models, (m) => m.name);

  const engines = optional(
    'engines',
    (f, v) =>
      list(f, v).map((e, i) =>
        (ENGINE_KINDS as readonly unknown[]).includes(e) ? (e as EngineName) : fail(`${f}[${i}]`, `must be one of ${ENGINE_KINDS.join(', ')}, got ${show(e)}`),
      ),
    ['onnxruntime'] as EngineName[],
  );
  unique('engines', engines, (e) => e);
  const shots = optional('shots', (f, v) => list(f, v).map((s, i) => int(`${f}[${i}]`, s, 0, 5)), [5]);
  unique('shots', shots, String);
  const tokenScopes = optional(
    'tokenScopes',
    (f, v) => list(f, v).map((s, i) => (isTokenScope(s) ? s : fail(`${f}[${i}]`, `must be "all", "question" or "answer", got ${show(s)}`))),
    ['answer'] as TokenScope[],
  );
  unique('tokenScopes', tokenScopes, String);

  const interventions = optional(
    'interventions',
    (f, v) =>
      list(f, v).map((x, i): Intervention => {
        const g = `${f}[${i}]`;
        if (!isObject(x)) fail(g, `must be an object like {"name": "none"}, got ${show(x)}`);
        const xx = x as Record<string, unknown>;
        for (const k of Object.keys(xx))
          if (!['name', 'maskExperts', 'routerBias', 'evalArgs'].includes(k))
            fail(`${g}.${k}`, 'is not an intervention field (known: name, maskExperts, routerBias, evalArgs)');
        const name = str(`${g}.name`, xx.name);
        if (!NAME.test(name)) fail(`${g}.name`, `must be 1-80 letters, digits, "_", ".", "+" or "-" (it names folders), got ${JSON.stringify(name)}`);
        const out: Intervention = { name };
        if (xx.maskExperts !== undefined) {
          const m = str(`${g}.maskExperts`, xx.maskExperts).replace(/\s+/g, '');
          if (!MASK.test(m)) fail(`${g}.maskExperts`, `must be "L:E,L:E,..." (layer:expert pairs), got ${JSON.stringify(xx.maskExperts)}`);
          out.maskExperts = m;
        }
        if (xx.routerBias !== undefined) out.routerBias = existing(`${g}.routerBias`, str(`${g}.routerBias`, xx.routerBias), 'file');
        if (xx.evalArgs !== undefined) {
          const a = Array.isArray(xx.evalArgs) ? xx.evalArgs : fail(`${g}.evalArgs`, `must be an array of strings, got ${show(xx.evalArgs)}`);
          out.evalArgs = a.map((s, j) => (typeof s === 'string' ? s : fail(`${g}.evalArgs[${j}]`, `must be a string, got ${show(s)}`)));
          const owned = out.evalArgs.find((s) => RESERVED_FLAGS.includes(s.split('=')[0]));
          if (owned) fail(`${g}.evalArgs`, `must not set ${owned.split('=')[0]}, which the sweep sets itself`);
        }
        return out;
      }),
    [{ name: 'none' }] as Intervention[],
  );
  unique('interventions', interventions, (x) => x.name);

  const resources = optional(
    'resources',
    (f, v) => {
      if (!isObject(v)) fail(f, `must be an object, got ${show(v)}`);
      const r = v as Record<string, unknown>;
      for (const k of Object.keys(r))
        if (!['cpus', 'gpus', 'memory', 'time', 'partition', 'account'].includes(k))
          fail(`${f}.${k}`, 'is not a resources field (known: cpus, gpus, memory, time, partition, account)');
      const out: SweepResources = { cpus: r.cpus === undefined ? 1 : int(`${f}.cpus`, r.cpus, 1, 1024) };
      if (r.gpus !== undefined) out.gpus = int(`${f}.gpus`, r.gpus, 0, 64);
      for (const k of ['memory', 'time', 'partition', 'account'] as const) {
        if (r[k] === undefined) continue;
        const s = str(`${f}.${k}`, r[k]);
        // These go into #SBATCH lines: keep them to one plain token.
        if (!/^[A-Za-z0-9_.:,+-]+$/.test(s)) fail(`${f}.${k}`, `must be one plain token (letters, digits, _ . : , + -), got ${JSON.stringify(s)}`);
        out[k] = s;
      }
      return out;
    },
    { cpus: 1 } as SweepResources,
  );

  // Every unit is a process and a line of sweep.json: a SPEC whose product is absurd is refused, not planned.
  const units = models.length * engines.length * shots.length * tokenScopes.length * interventions.length * shards;
  if (units > MAX_SWEEP_UNITS)
    fail('shards', `the SPEC makes ${units} units (models x engines x shots x tokenScopes x interventions x shards); at most ${MAX_SWEEP_UNITS}`);
  const pruning = o.pruning === undefined ? undefined : parsePruningGrid(o.pruning, path.dirname(file), fail);
  return {
    file,
    data,
    split,
    subjects,
    limit,
    batchSize,
    shards,
    provider,
    cache,
    precision,
    python,
    models,
    engines,
    shots,
    tokenScopes,
    interventions,
    resources,
    ...(pruning ? { pruning } : {}),
  };
}

/** Flags of `moe-scope eval` that the sweep itself sets for every unit. */
export const RESERVED_FLAGS = [
  '--model',
  '--data',
  '--out',
  '--split',
  '--shots',
  '--subjects',
  '--limit',
  '--token-scope',
  '--batch-size',
  '--provider',
  '--cache',
  '--precision',
  '--shard',
  '--engine',
  '--python',
  '--mask-experts',
  '--router-bias',
];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
