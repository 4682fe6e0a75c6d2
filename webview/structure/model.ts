/**
 * The expert-structure view's data: which similarity matrices a WeightAnalysis holds and what each one is,
 * the analysis checked into a StructureModel, and its compact form for the webview state.
 */
import type { LayerWeightSimilarity, WeightAnalysis } from '../../src/shared/protocol';
import { meanOffDiagonal } from '../../src/analysis/pairStats';
import { packArray, unpackArray, type PackedArray } from '../common/arrays';

/** Matrices of the protocol; the up/down neuron-level ones are shown only when the analysis carries them (older cached results may not). */
export type MatrixKey =
  | 'gate'
  | 'up'
  | 'down'
  | 'all'
  | 'router'
  | 'neuronRowMean'
  | 'neuronColMean'
  | 'neuronUpRowMean'
  | 'neuronUpColMean'
  | 'neuronDownRowMean'
  | 'neuronDownColMean';

export interface MatrixSpec {
  key: MatrixKey;
  /** Menu text. */
  option: string;
  /** Legend / tooltip text: what one value is. */
  label: string;
  definition: string;
  get(l: LayerWeightSimilarity): unknown;
}

const FLAT_COS =
  "Cosine similarity cos(a, b) = a·b / (|a| |b|) between two experts' flattened weight matrices (every value, row-major): 1 = same direction, 0 = orthogonal, −1 = opposite.";
export const NEURON_ORDER =
  'The order of neurons inside an expert is arbitrary (permuting them changes nothing the expert computes), so per-neuron vectors are only comparable between experts that share an origin, e.g. experts upcycled from one dense FFN.';

export const MATRICES: readonly MatrixSpec[] = [
  {
    key: 'gate',
    option: 'gate_proj (w1)',
    label: 'cosine similarity of gate_proj',
    get: (l) => l.gate,
    definition: `gate_proj (w1, intermediate × hidden). ${FLAT_COS}`,
  },
  {
    key: 'up',
    option: 'up_proj (w3)',
    label: 'cosine similarity of up_proj',
    get: (l) => l.up,
    definition: `up_proj (w3, intermediate × hidden). ${FLAT_COS}`,
  },
  {
    key: 'down',
    option: 'down_proj (w2)',
    label: 'cosine similarity of down_proj',
    get: (l) => l.down,
    definition: `down_proj (w2, hidden × intermediate). ${FLAT_COS}`,
  },
  {
    key: 'all',
    option: 'all expert weights',
    label: 'cosine similarity of all expert weights',
    get: (l) => l.all,
    definition: `All three matrices concatenated, [gate_proj; up_proj; down_proj]. ${FLAT_COS} A matrix with larger weights counts for more.`,
  },
  {
    key: 'router',
    option: 'router rows',
    label: 'cosine similarity of router rows',
    get: (l) => l.router,
    definition:
      'Cosine similarity between two rows of the layer\'s router (gate) weight [E × hidden]: each row is the direction an expert "listens" to. Similar rows mean the two experts tend to be scored alike.',
  },
  {
    key: 'neuronRowMean',
    option: 'neuron row means',
    label: 'cosine similarity of gate_proj row means',
    get: (l) => l.neuronRowMean,
    definition: `Neuron level: each expert's vector of gate_proj row means (one value per intermediate neuron: the mean of its input weights), compared by cosine similarity. ${NEURON_ORDER}`,
  },
  {
    key: 'neuronColMean',
    option: 'neuron column means',
    label: 'cosine similarity of gate_proj column means',
    get: (l) => l.neuronColMean,
    definition:
      "Neuron level: each expert's vector of gate_proj column means (one value per hidden input dimension: the mean over the expert's neurons), compared by cosine similarity. Does not depend on the order of neurons.",
  },
  {
    key: 'neuronUpRowMean',
    option: 'up_proj row means',
    label: 'cosine similarity of up_proj row means',
    get: (l) => l.neuronUp?.rowMean,
    definition: `Neuron level: each expert's vector of up_proj row means (one per intermediate neuron), compared by cosine similarity. ${NEURON_ORDER}`,
  },
  {
    key: 'neuronUpColMean',
    option: 'up_proj column means',
    label: 'cosine similarity of up_proj column means',
    get: (l) => l.neuronUp?.colMean,
    definition: "Neuron level: each expert's vector of up_proj column means (one per hidden dimension), compared by cosine similarity.",
  },
  {
    key: 'neuronDownRowMean',
    option: 'down_proj row means',
    label: 'cosine similarity of down_proj row means',
    get: (l) => l.neuronDown?.rowMean,
    definition: "Neuron level: each expert's vector of down_proj row means (one per hidden output dimension), compared by cosine similarity.",
  },
  {
    key: 'neuronDownColMean',
    option: 'down_proj column means',
    label: 'cosine similarity of down_proj column means',
    get: (l) => l.neuronDown?.colMean,
    definition: `Neuron level: each expert's vector of down_proj column means (one per intermediate neuron), compared by cosine similarity. ${NEURON_ORDER}`,
  },
];
export const CORE_KEYS: readonly MatrixKey[] = ['gate', 'up', 'down', 'all', 'router', 'neuronRowMean', 'neuronColMean'];
export const DEPTH_KEYS = ['gate', 'up', 'down', 'all', 'router'] as const;
export const DEPTH_LABELS: Record<(typeof DEPTH_KEYS)[number], string> = {
  gate: 'gate_proj',
  up: 'up_proj',
  down: 'down_proj',
  all: 'all weights',
  router: 'router rows',
};

export const matrixSpec = (k: MatrixKey): MatrixSpec => MATRICES.find((m) => m.key === k)!;

/** The matrices the menu offers: the core ones, and the optional ones some layer of the analysis has. */
export const availableMatrices = (model: StructureModel | null): MatrixSpec[] =>
  model ? MATRICES.filter((m) => CORE_KEYS.includes(m.key) || model.layers.some((l) => l.matrices[m.key])) : [];

/** One layer as the view uses it: every matrix checked to be E x E numbers (else absent). */
export interface StructureLayer {
  layer: number;
  matrices: Partial<Record<MatrixKey, Float64Array>>;
  r2: number;
  meanOff: Record<(typeof DEPTH_KEYS)[number], number>;
}

export interface StructureModel {
  modelPath: string;
  numExperts: number;
  ms: number;
  layers: StructureLayer[];
}

function matrixOf(v: unknown, E: number): Float64Array | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const arr = v as ArrayLike<number>;
  if (typeof arr.length !== 'number' || arr.length !== E * E) return undefined;
  const out = new Float64Array(E * E);
  for (let i = 0; i < out.length; i++) out[i] = Number(arr[i]);
  return out;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);

/** Checks and normalises a WeightAnalysis (layers sorted by id; malformed matrices dropped, not fatal). */
export function structureModel(a: WeightAnalysis): StructureModel {
  const E = Math.max(0, Math.floor(Number(a.numExperts) || 0));
  const layers = (Array.isArray(a.layers) ? a.layers : [])
    .filter((l) => l && typeof l === 'object')
    .map((l, i): StructureLayer => {
      const matrices: StructureLayer['matrices'] = {};
      for (const spec of MATRICES) {
        const m = matrixOf(spec.get(l), E);
        if (m) matrices[spec.key] = m;
      }
      const mo = (l.meanOffDiagonal ?? {}) as Partial<Record<string, unknown>>;
      const meanOff = Object.fromEntries(
        DEPTH_KEYS.map((k) => {
          const v = num(mo[k]);
          const m = matrices[k];
          return [k, Number.isFinite(v) ? v : m ? meanOffDiagonal(m, E) : NaN];
        }),
      ) as StructureLayer['meanOff'];
      return { layer: Number.isFinite(Number(l.layer)) ? Number(l.layer) : i, matrices, r2: num(l.routerVsExpertR2), meanOff };
    })
    .sort((x, y) => x.layer - y.layer);
  return { modelPath: String(a.modelPath ?? ''), numExperts: E, ms: Number(a.ms) || 0, layers };
}

// --- persistence: the core matrices as base64 float32, within a budget ---------------------------------

export interface PackedStructure {
  modelPath: string;
  numExperts: number;
  ms: number;
  layers: { layer: number; r2: number; meanOff: StructureLayer['meanOff']; keys: MatrixKey[]; data: PackedArray }[];
}

/** Above this many matrix values the analysis is not kept in the webview state (the host keeps the panel alive and re-sends). */
export const MAX_PERSISTED_VALUES = 1 << 19;

export function packModel(m: StructureModel): PackedStructure | null {
  const E2 = m.numExperts * m.numExperts;
  let total = 0;
  for (const l of m.layers) for (const k of CORE_KEYS) if (l.matrices[k]) total += E2;
  if (total > MAX_PERSISTED_VALUES) return null;
  return {
    modelPath: m.modelPath,
    numExperts: m.numExperts,
    ms: m.ms,
    layers: m.layers.map((l) => {
      const keys = CORE_KEYS.filter((k) => l.matrices[k]);
      const buf = new Float32Array(keys.length * E2);
      keys.forEach((k, i) => buf.set(l.matrices[k]!, i * E2));
      return { layer: l.layer, r2: l.r2, meanOff: l.meanOff, keys, data: packArray(buf) };
    }),
  };
}

export function unpackModel(p: PackedStructure): StructureModel {
  const E2 = p.numExperts * p.numExperts;
  return {
    modelPath: p.modelPath,
    numExperts: p.numExperts,
    ms: p.ms,
    layers: p.layers.map((l) => {
      const buf = unpackArray(l.data) as Float32Array;
      const matrices: StructureLayer['matrices'] = {};
      l.keys.forEach((k, i) => (matrices[k] = Float64Array.from(buf.subarray(i * E2, (i + 1) * E2))));
      return { layer: l.layer, r2: l.r2 ?? NaN, meanOff: l.meanOff, matrices };
    }),
  };
}
