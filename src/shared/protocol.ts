/**
 * The one protocol module of MoE Scope. Imported by the extension host, the inference process, the
 * command line and the webviews, so that every message crossing a process or iframe boundary has one
 * typed definition. Messages are discriminated unions; requests carry ids and get exactly one response.
 *
 * Nothing in here may import node or vscode: the webview bundle includes this file.
 */

/**
 * A run-time list of every member of the string union T, checked by the compiler in both directions:
 * an entry that is not a member, or a member the list leaves out, does not compile. (`satisfies T[]`
 * checks only the first.) Use: `everyMemberOf<Code>()(['a', 'b'])`.
 */
export function everyMemberOf<T extends string>() {
  return <const L extends readonly T[]>(list: L & ([Exclude<T, L[number]>] extends [never] ? unknown : { missingMembers: Exclude<T, L[number]> })): L => list;
}

// ---------------------------------------------------------------------------------------------------
// Model and routing data

/**
 * The MoE decoder families transformers implements (its `model_type`, text variants where a family is
 * multimodal). Which engine runs which is in the README's family table; an engine refuses the others by name.
 */
export const MOE_FAMILIES = [
  'olmoe',
  'flex_olmo',
  'mixtral',
  'qwen2_moe',
  'qwen3_moe',
  'qwen3_next',
  'qwen3_5_moe',
  'deepseek_v2',
  'deepseek_v3',
  'gpt_oss',
  'granitemoe',
  'granitemoeshared',
  'granitemoehybrid',
  'jetmoe',
  'phimoe',
  'dbrx',
  'llama4',
  'glm4_moe',
  'ernie4_5_moe',
  'hunyuan_v1_moe',
  'dots1',
  'minimax',
  'jamba',
  'lfm2_moe',
  'longcat_flash',
  'afmoe',
  'cohere2_moe',
  'exaone_moe',
  'mimo_v2_flash',
  'kimi_linear',
] as const;
export type ModelFamilyName = (typeof MOE_FAMILIES)[number];
/**
 * How a family's router chooses experts and what weight each chosen expert's output receives
 * (../shared/notes/families.md, "Routing kinds"):
 * softmax-topk: softmax over all experts, top-k, raw probabilities (OLMoE);
 * softmax-topk-renorm: the same renormalised over the k (Mixtral);
 * softmax-bias-choice: a bias added only to choose, weights from the unbiased softmax (ERNIE 4.5, LongCat);
 * softmax-group-scaled: softmax, greedy or group-limited top-k, times a scaling factor (DeepSeek-V2);
 * sigmoid-bias-group: sigmoid scores + correction bias to choose, group-limited, renormalised x scaling (DeepSeek-V3);
 * topk-sigmoid-input: top-k of logits then sigmoid, the weight scales the expert's input (Llama 4);
 * sparsemixer: two masked softmaxes, top-2 (PhiMoE).
 */
export type RoutingKind =
  'softmax-topk' | 'softmax-topk-renorm' | 'softmax-bias-choice' | 'softmax-group-scaled' | 'sigmoid-bias-group' | 'topk-sigmoid-input' | 'sparsemixer';
/** What a model's routing is, as the engine observed it (shown on screen beside the routing). */
export interface RoutingDescription {
  kind: RoutingKind;
  /** The function that turns router logits into the full distribution the charts and entropy use. */
  scoreFunction: 'softmax' | 'sigmoid';
  /** Routed scaling factor folded into the applied weights (1 when the family has none). */
  routedScalingFactor: number;
  /** Identity ("zero") experts appended after the real ones (LongCat-Flash); 0 otherwise. */
  zeroExperts: number;
  /** In words: what an applied weight is for this family, e.g. "softmax probability, renormalised over the top-k". */
  appliedWeight: string;
}
export type ExecutionProviderSetting = 'auto' | 'cuda' | 'webgpu' | 'cpu';
/** Where the model runs: an ONNX Runtime execution provider, or (PyTorch engine) mps on Apple GPUs. */
export type ExecutionProvider = 'cuda' | 'webgpu' | 'cpu' | 'mps';
export const EXECUTION_PROVIDER_SETTINGS: readonly ExecutionProviderSetting[] = ['auto', 'cuda', 'webgpu', 'cpu'];
/**
 * How the experts are computed in the decoder graph: ONNX Runtime's com.microsoft.MoE operator (CPU,
 * CUDA; only the chosen experts run), or, on WebGPU (which has no MoE kernel), standard ops: every
 * expert densely weighted by its top-k gate ('dense-gated'), or the tokens grouped per expert ('grouped').
 */
export type ExpertFormulation = 'moe-op' | 'dense-gated' | 'grouped';

export interface ProviderDecision {
  provider: ExecutionProvider;
  used: boolean;
  why: string;
}

/** What the WebGPU adapter probe found (cached per process). */
export interface WebGpuAdapterInfo {
  ok: boolean;
  /** The adapter as the Vulkan/Metal/D3D12 driver names it, e.g. "NVIDIA H200 (Vulkan)", "lavapipe (Mesa 25.0.7, CPU)". */
  name?: string;
  /** A CPU implementation of the graphics API (lavapipe): correct but slower than the CPU engine, so auto passes over it. */
  software?: boolean;
  /** True when float16 kernels ran on the adapter (WebGPU shader-f16). */
  shaderF16?: boolean;
  /** Device memory in bytes where it can be known (NVIDIA: nvidia-smi; lavapipe: system memory). */
  memoryBytes?: number;
  /** Why there is no usable adapter. */
  why?: string;
  probeMs?: number;
}

/**
 * The facts `moe-scope doctor` and "MoE: Check inference environment" report: the engine and why, the
 * provider and adapter and why, and for ONNX Runtime the graph's dtype, expert formulation, memory
 * estimate and the op types placed on the CPU. For the PyTorch engine, `python` holds its check instead.
 */
export interface InferenceEnvironmentReport {
  engine: EngineKind;
  engineWhy: string;
  providerRequested: ExecutionProviderSetting;
  provider: ExecutionProvider;
  /** Each provider tried and why it was or was not used, in order. */
  decisions: ProviderDecision[];
  adapter?: WebGpuAdapterInfo;
  /** The PyTorch engine's environment (`python -m moe_scope_worker --check`) when it was considered. */
  python?: PythonEnvironment;
  /** ONNX Runtime only: the graph's dtype and expert formulation. */
  dtype?: ComputeDType;
  expertFormulation?: ExpertFormulation;
  /** ONNX Runtime only: the weight precision the graph was built at, and why (auto says what it weighed). */
  precision?: WeightPrecision;
  precisionWhy?: string;
  /** Estimated device memory for weights + activations at the largest batch the engine runs. */
  memoryEstimateBytes?: number;
  /** Op types ONNX Runtime placed on the CPU, with node counts (from its placement log); {} for PyTorch. */
  cpuOpTypes: Record<string, number>;
  /** Nodes per execution provider, from the same log. */
  nodesByProvider: Record<string, number>;
  graphDir?: string;
  loadMs?: number;
}
export type ComputeDType = 'float32' | 'float16';
/** What a loaded model computes in: the ONNX graph's dtype, or bfloat16 for the PyTorch engine on a GPU. */
export type ModelDType = ComputeDType | 'bfloat16';
/** Which inference process runs the model: ONNX Runtime (Node) or the PyTorch worker (Python). */
export type EngineKind = 'onnxruntime' | 'pytorch';
export type EngineSetting = 'auto' | EngineKind;
export const ENGINE_KINDS: readonly EngineKind[] = everyMemberOf<EngineKind>()(['onnxruntime', 'pytorch']);
/** The values of moeScope.engine and --engine (package.json's enum is held equal by test/unit/engine-settings.test.ts). */
export const ENGINE_SETTINGS: readonly EngineSetting[] = everyMemberOf<EngineSetting>()(['auto', ...ENGINE_KINDS]);

/**
 * The precision the model's weights are held in. ONNX Runtime CPU: fp32, or int8 / int4 block-quantised
 * experts (QMoE) and dense projections (MatMulNBits) with the router kept fp32; WebGPU: fp32 or fp16;
 * CUDA: fp16; PyTorch: fp32 or bf16. `auto`: the most precise the engine can do that fits the memory.
 */
export type WeightPrecision = 'fp32' | 'fp16' | 'bf16' | 'int8' | 'int4';
export type PrecisionSetting = 'auto' | WeightPrecision;
export const PRECISION_SETTINGS: readonly PrecisionSetting[] = ['auto', 'fp32', 'fp16', 'bf16', 'int8', 'int4'];

/** What `moe-scope precision-check` measured: N MMLU prompts at fp32 and at `precision`. */
export interface PrecisionCheckSummary {
  format: 'moe-scope.precision-check';
  model: string;
  precision: WeightPrecision;
  prompts: number;
  /** Fraction of (layer, token) top-k sets identical to fp32's. */
  setAgreement: number;
  /** Fraction of chosen experts shared with fp32. */
  expertOverlap: number;
  perLayer: number[];
  maxProbDiff: number;
  /** Fraction of prompts whose most likely answer letter is the same. */
  answerAgreement: number;
  createdAt: string;
}

export interface LoadOptions {
  executionProvider: ExecutionProviderSetting;
  /** Weight precision (default auto). */
  precision?: PrecisionSetting;
  /** Folder for generated ONNX graphs and converted weights; default: a per-user cache folder. */
  cacheDir?: string;
  /** WebGPU only (tests, benchmarks): force the compute dtype instead of float16-when-shader-f16. */
  webgpuDType?: ComputeDType;
  /** WebGPU only (tests, benchmarks): force the expert formulation. */
  webgpuExperts?: ExpertFormulation;
}

/**
 * The largest model any reader accepts (the run's accumulator, summary.json checks): far beyond every real
 * MoE (Qwen3-Next has 512 experts, DeepSeek-V3 61 layers), small enough that a corrupt file cannot make a
 * reader allocate without bound.
 */
export const MODEL_LIMITS = { maxLayers: 1024, maxExperts: 4096 } as const;

export interface ModelInfo {
  path: string;
  family: ModelFamilyName;
  modelType: string;
  numLayers: number;
  numExperts: number;
  topK: number;
  hiddenSize: number;
  vocabSize: number;
  maxPositions: number;
  /** True when the k chosen weights are rescaled to sum to 1 (Mixtral); false for OLMoE. */
  normTopKProb: boolean;
  /** Shared experts per layer (Qwen2-MoE); 0 for OLMoE and Mixtral. */
  sharedExperts: number;
  /**
   * The decoder-layer index of each routing row (length numLayers: numLayers counts routing rows, i.e. MoE
   * layers). Absent in files written before dense layers were supported: then row i is decoder layer i.
   */
  moeLayers?: number[];
  /** Decoder layers in all (MoE, dense and other kinds); absent means numLayers. */
  numDecoderLayers?: number;
  /** How this family routes (absent in files written before it was recorded). */
  routing?: RoutingDescription;
  executionProvider: ExecutionProvider;
  /** Why the provider in use differs from the one asked for, e.g. "CUDA provider not installed". */
  providerNote?: string;
  /** The WebGPU adapter's name when the provider is webgpu (shown in the status bar). */
  adapterName?: string;
  /** Each provider tried, in order, and why it was or was not used (auto: cuda -> webgpu -> cpu). */
  providerDecisions?: ProviderDecision[];
  /** How the experts are computed (see ExpertFormulation). */
  expertFormulation?: ExpertFormulation;
  /** PyTorch engine: the experts implementation transformers runs (grouped_mm, batched_mm, eager); kernels differ in numerics. */
  expertsImplementation?: string;
  dtype: ModelDType;
  /** The weights' precision (absent in files written before it was selectable: fp32 on the CPU). */
  precision?: WeightPrecision;
  /** Why that precision, e.g. "requested" or "auto: fp32 needs about 27.6 GB, 14.1 GB available; int8 fits". */
  precisionWhy?: string;
  /** The last `moe-scope precision-check` of this model at this precision, attached by the extension host. */
  precisionCheck?: PrecisionCheckSummary;
  /** The engine that loaded the model (absent from files written before engines were selectable). */
  engine?: EngineKind;
  /** The device in words, e.g. "cuda:0 NVIDIA H200" or "cpu". */
  device?: string;
  /** How this tokenizer's answer letters " A".." D" are scored at the answer position. */
  answerScoring: AnswerScoring;
  /**
   * Present for MoE Scope's demo checkpoints: `moe-scope make-demo-model` (random weights) or, with
   * trained: true, the toy the demo trains on MMLU dev/val text (src/shared/demoLabel.ts).
   */
  demo?: { note: string; trained?: boolean };
  loadMs: number;
}

/**
 * Routing of one token sequence. Flattened typed arrays keep IPC and postMessage cheap:
 * index [layer][token][expert] as (layer * numTokens + token) * numExperts + expert,
 * and [layer][token][slot] likewise with topK.
 */
export interface Routing {
  numLayers: number;
  numTokens: number;
  numExperts: number;
  topK: number;
  /** Softmax over all experts of the router logits, [layers][tokens][experts]. */
  probs?: Float32Array;
  /** The experts actually used, [layers][tokens][topK], in descending weight order. */
  topExperts: Uint16Array;
  /** The weights actually applied to those experts' outputs, [layers][tokens][topK]. */
  topWeights: Float32Array;
  /** Gate entropy in nats of the full softmax, [layers][tokens]. Divide by ln(numExperts) to normalise. */
  entropy: Float32Array;
}

export interface TokenSpan {
  id: number;
  /** The token as text (decoded bytes; may contain U+FFFD for split UTF-8 sequences). */
  text: string;
  /** UTF-16 offsets into the traced text; [start, end). */
  start: number;
  end: number;
}

/**
 * Spans for a trace given as ids (there is no text to point into): each token's decoded text, laid end to
 * end. Both engines use it, so a trace by ids shows the same tokens on either.
 */
export function spansOfDecodedTokens(ids: ArrayLike<number>, textOf: (index: number) => string): TokenSpan[] {
  let pos = 0;
  return Array.from(ids, (id, i) => {
    const text = textOf(i);
    const span = { id, text, start: pos, end: pos + text.length };
    pos += text.length;
    return span;
  });
}

export type AnswerLetter = 'A' | 'B' | 'C' | 'D';
export const ANSWER_LETTERS: readonly AnswerLetter[] = everyMemberOf<AnswerLetter>()(['A', 'B', 'C', 'D']);
/**
 * The text an MMLU prompt ends with (lm-evaluation-harness); the answer letter follows it after a space.
 * The prompt builder (src/mmlu/prompt.ts) and both engines' answer scoring use these, never a copy.
 */
export const ANSWER_CUE = 'Answer:';
/** The cue followed by a letter: the text whose extra tokens after the cue are the letter's tokens. */
export function answerContinuation(letter: AnswerLetter): string {
  return `${ANSWER_CUE} ${letter}`;
}

/**
 * 'single-token': each of " A".." D" is one token; its log-probability is read at the answer position.
 * 'continuation': at least one letter is several tokens; each letter's log-probability is the sum over
 * its tokens of log P(token | prompt and the letter's earlier tokens), as lm-evaluation-harness scores a
 * continuation. Both give the same numbers when every letter is one token.
 */
export type AnswerScoringMethod = 'single-token' | 'continuation';
export const ANSWER_SCORING_DEFINITIONS: Record<AnswerScoringMethod, string> = {
  'single-token': 'log-probability of each one-token letter " A".." D" at the answer position',
  continuation: 'log-likelihood of each letter\'s full continuation " A".." D" after the prompt (summed over its tokens, as lm-evaluation-harness does)',
};

export interface AnswerScoring {
  method: AnswerScoringMethod;
  /** Token ids of " A", " B", " C", " D" as they follow "Answer:"; exactly one id each for 'single-token'. */
  letterTokenIds: [number[], number[], number[], number[]];
}

export interface TraceResult {
  model: ModelInfo;
  text?: string;
  tokens: TokenSpan[];
  routing: Routing;
  /**
   * log P(" A".." D" | text): full-vocabulary log-softmax at the last position for one-token letters;
   * summed over the letter's tokens when model.answerScoring.method is 'continuation'.
   */
  answerLogProbs: [number, number, number, number];
  /** Softmax restricted to the four letters (what the panel shows as answer probabilities). */
  answerProbs: [number, number, number, number];
  /** Full-vocabulary logits at the last position; only when asked for (CLI --json). */
  lastLogits?: Float32Array;
  /** Present with traceOptions.allExperts: every expert's unweighted output statistics. */
  expertOutputs?: ExpertOutputStats;
  ms: number;
}

export interface TraceOptions {
  includeProbs: boolean;
  includeLastLogits: boolean;
  /** Run every expert on every token (analysis mode of "A Closer Look into MoE"). */
  allExperts?: boolean;
  /** Change the routing (expert ablation / router steering); the routing returned is the one used. */
  intervention?: RouterIntervention;
}

/**
 * A change to every router's logits before softmax and top-k: masked experts get -inf (so the
 * probabilities renormalise over the remaining experts and they are never chosen) and biased experts get
 * an additive bias. Layers and experts are 0-based. Normalised form (see src/analysis/interventions.ts):
 * pairs sorted, no duplicates, no zero biases, no bias on a masked expert.
 */
export interface RouterIntervention {
  /** [layer, expert] pairs removed from routing. */
  mask: [number, number][];
  /** [layer, expert, bias] added to that expert's router logit. */
  bias: [number, number, number][];
  /** How it was made, for people, e.g. "prune never-activated experts of run base (answer position)". */
  description?: string;
  /** For an intervention derived from a run (moe-scope experiment): that run's folder, to compare against. */
  baselineRun?: string;
}

/** Per layer and token: L2 norm of each expert's unweighted output and pairwise output similarity. */
export interface ExpertOutputStats {
  numLayers: number;
  numTokens: number;
  numExperts: number;
  /** [layers][tokens][experts] */
  norms: Float32Array;
  /** Mean angular similarity between different experts' outputs for the same token, [layers][tokens]. */
  meanAngularSimilarity: Float32Array;
}

/** One prompt of a scoring batch: token ids after a shared, cached prefix. */
export interface ScoreItem {
  key: string;
  /** Ids that follow the prefix; the last id is the answer position (the "Answer:" colon). */
  ids: number[];
}

/**
 * Which positions' routing a score call returns: every prompt token ('all', the default), the item's own
 * tokens after the prefix ('item'), or only the answer position ('last'). The runner asks for no more than
 * its token scope reads, which keeps a GPU engine's transfers small.
 */
export type RoutingPositions = 'all' | 'item' | 'last';
export const ROUTING_POSITIONS: readonly RoutingPositions[] = everyMemberOf<RoutingPositions>()(['all', 'item', 'last']);

export interface ScoreParams {
  /** Ids every item starts with. Its KV cache is computed once and reused while the key stays the same. */
  prefix: { key: string; ids: number[] } | null;
  items: ScoreItem[];
  routingPositions?: RoutingPositions;
  /** Change the routing; the prefix cache is reused only under the same intervention. */
  intervention?: RouterIntervention;
  /** Also return each chosen expert's unweighted output L2 norm (ScoreItemResult.expertOutputNorms), for MAN/MSAN. */
  expertOutputNorms?: boolean;
}

export interface ScoreItemResult {
  key: string;
  /** As TraceResult.answerLogProbs (method: the loaded model's answerScoring.method). */
  answerLogProbs: [number, number, number, number];
  /** Routing of the positions asked for: token t of it is prompt token routingStart + t. */
  routing: Routing;
  /** Prompt index of the routing's first token (0 for 'all', the prefix length for 'item'). */
  routingStart: number;
  /** Prompt length: prefix + item tokens. */
  promptTokens: number;
  /**
   * With ScoreParams.expertOutputNorms: the L2 norm of each chosen expert's output before the gate weight,
   * [layers][tokens][topK] aligned with routing.topExperts.
   */
  expertOutputNorms?: Float32Array;
}

export interface ScoreResult {
  items: ScoreItemResult[];
  /** Tokens actually pushed through the network (prefix tokens counted only when computed). */
  computedTokens: number;
  /** Of those, positions that were padding. */
  paddingTokens: number;
  prefixReused: boolean;
  ms: number;
}

export interface TokenizeResult {
  ids: number[];
  tokens: TokenSpan[];
}

export interface WeightAnalysisParams {
  /** Layers to analyse; default all. */
  layers?: number[];
}

export interface LayerWeightSimilarity {
  layer: number;
  /** E x E cosine similarity of flattened weights, row-major. */
  gate: number[];
  up: number[];
  down: number[];
  all: number[];
  /** E x E cosine similarity of router rows. */
  router: number[];
  /** Neuron-level: cosine similarity of the experts' row-mean / column-mean vectors of gate_proj. */
  neuronRowMean: number[];
  neuronColMean: number[];
  /** Neuron-level similarity of up_proj and down_proj (same definitions as for gate_proj). */
  neuronUp: NeuronMeanSimilarity;
  neuronDown: NeuronMeanSimilarity;
  /** R^2 of regressing router-row similarity on expert-weight similarity over expert pairs. */
  routerVsExpertR2: number;
  /** The OLS fit behind routerVsExpertR2 (router cos = slope x expert cos + intercept). */
  routerVsExpertFit: { slope: number; intercept: number; r2: number; pairs: number };
  /** Frobenius norm of each expert's matrices and Euclidean norm of each router row (cosines discard them). */
  norms: { gate: number[]; up: number[]; down: number[]; router: number[] };
  /** Weights-only pruning criterion (after AIMER): per expert, |mean| / RMS over its gate, up and down weights together. */
  absMeanOverRms?: number[];
  meanOffDiagonal: { gate: number; up: number; down: number; all: number; router: number; neuronRowMean: number; neuronColMean: number };
}

export interface NeuronMeanSimilarity {
  /** E x E cosine of the experts' row-mean vectors, row-major. */
  rowMean: number[];
  /** E x E cosine of the experts' column-mean vectors, row-major. */
  colMean: number[];
}

/** Per-layer means as series over depth (index i belongs to layer[i], ascending). */
export interface WeightDepthSummary {
  layer: number[];
  gate: number[];
  up: number[];
  down: number[];
  all: number[];
  router: number[];
  neuronRowMean: number[];
  neuronColMean: number[];
  routerVsExpertR2: number[];
}

export interface WeightAnalysis {
  modelPath: string;
  numExperts: number;
  layers: LayerWeightSimilarity[];
  byDepth: WeightDepthSummary;
  ms: number;
}

// ---------------------------------------------------------------------------------------------------
// Extension host <-> inference process

/** method name -> params and result. One table drives the request, response and client types. */
export interface EngineMethods {
  load: { params: { modelPath: string; options: LoadOptions }; result: ModelInfo };
  tokenize: { params: { texts: string[] }; result: TokenizeResult[] };
  trace: { params: { input: { text: string } | { ids: number[] }; options: TraceOptions }; result: TraceResult };
  score: { params: ScoreParams; result: ScoreResult };
  analyzeWeights: { params: WeightAnalysisParams; result: WeightAnalysis };
  shutdown: { params: Record<string, never>; result: { ok: true } };
}
export type EngineMethod = keyof EngineMethods;
/** The method names at run time (generated for the PyTorch worker into python/moe_scope_worker/protocol_names.json). */
export const ENGINE_METHODS = everyMemberOf<EngineMethod>()(['load', 'tokenize', 'trace', 'score', 'analyzeWeights', 'shutdown']);

/** One handler per method, typed by EngineMethods: a method added there does not compile until an engine handles it. */
export type EngineHandlers = {
  [M in EngineMethod]: (params: EngineMethods[M]['params'], signal?: AbortSignal) => Promise<EngineMethods[M]['result']> | EngineMethods[M]['result'];
};

/** Runs `method`'s handler; a name that is not a method (it came off the wire) is a bad-input failure. */
export async function dispatchEngineMethod<M extends EngineMethod>(
  handlers: EngineHandlers,
  method: M,
  params: EngineMethods[M]['params'],
  signal?: AbortSignal,
): Promise<EngineMethods[M]['result']> {
  if (!Object.hasOwn(handlers, method)) throw new EngineFailure('bad-input', `unknown method ${String(method)}`);
  const handler: EngineHandlers[M] = handlers[method];
  return handler(params, signal);
}

export type EngineRequest = {
  [M in EngineMethod]: { type: 'request'; id: number; method: M; params: EngineMethods[M]['params'] };
}[EngineMethod];

export interface EngineCancel {
  type: 'cancel';
  /** Id of the request to abandon. Its response is an error with code 'cancelled'. */
  id: number;
}

export type EngineErrorCode =
  | 'cancelled'
  | 'not-loaded'
  | 'bad-model'
  | 'bad-input'
  /** The model computed NaN or infinity (router logits or outputs); the message names layer and tensor. */
  | 'non-finite'
  /** The requested execution provider cannot run this model (e.g. too little GPU memory); the CPU can. */
  | 'provider-unavailable'
  | 'process-died'
  | 'internal';

/** Every code at run time; the compiler rejects the list when it misses one of EngineErrorCode's members. */
export const ENGINE_ERROR_CODES = everyMemberOf<EngineErrorCode>()([
  'cancelled',
  'not-loaded',
  'bad-model',
  'bad-input',
  'non-finite',
  'provider-unavailable',
  'process-died',
  'internal',
]);

export interface EngineError {
  code: EngineErrorCode;
  message: string;
}

export type EngineResponse = { type: 'response'; id: number; ok: true; result: unknown } | { type: 'response'; id: number; ok: false; error: EngineError };

export interface EngineLog {
  type: 'log';
  level: 'info' | 'warn' | 'error';
  message: string;
}

export interface EngineReady {
  type: 'ready';
  pid: number;
}

export type EngineToHost = EngineResponse | EngineLog | EngineReady;
export type HostToEngine = EngineRequest | EngineCancel;
export const ENGINE_TO_HOST_TYPES = everyMemberOf<EngineToHost['type']>()(['response', 'log', 'ready']);
export const HOST_TO_ENGINE_TYPES = everyMemberOf<HostToEngine['type']>()(['request', 'cancel']);

/** Each key of T, and whether it may be absent: a record the compiler holds to T's keys in both directions. */
export type FieldKinds<T> = { [K in keyof T]-?: undefined extends T[K] ? 'optional' : 'required' };

/** The keys of ModelInfo (the PyTorch worker fills every required one; python/moe_scope_worker/protocol_names.json). */
export const MODEL_INFO_FIELDS: FieldKinds<ModelInfo> = {
  path: 'required',
  family: 'required',
  modelType: 'required',
  numLayers: 'required',
  numExperts: 'required',
  topK: 'required',
  hiddenSize: 'required',
  vocabSize: 'required',
  maxPositions: 'required',
  normTopKProb: 'required',
  sharedExperts: 'required',
  moeLayers: 'optional',
  numDecoderLayers: 'optional',
  routing: 'optional',
  executionProvider: 'required',
  providerNote: 'optional',
  adapterName: 'optional',
  providerDecisions: 'optional',
  expertFormulation: 'optional',
  expertsImplementation: 'optional',
  dtype: 'required',
  precision: 'optional',
  precisionWhy: 'optional',
  precisionCheck: 'optional',
  engine: 'optional',
  device: 'optional',
  answerScoring: 'required',
  demo: 'optional',
  loadMs: 'required',
};

/**
 * What an engine process sends for `tokenize` (the PyTorch worker and the ONNX Runtime process alike), on
 * its wire only: every text's ids and [start, end) offsets as flat typed arrays, `counts` tokens per text,
 * and the texts of tokens whose text is not the slice they point at (inserted tokens; split UTF-8 from the
 * ONNX Runtime process). The host rebuilds TokenizeResult[] from it (src/shared/tokenizeWire.ts).
 */
export interface WorkerTokenizeResult {
  ids: Int32Array;
  /** [start, end) per token, 2 per id. */
  offsets: Int32Array;
  counts: Int32Array;
  /** [flat token index, its text] for tokens with no span in the text (e.g. a BOS token). */
  inserted: [number, string][];
}
/** What the PyTorch worker sends for `trace`: a TraceResult whose token spans come as WorkerTokenizeResult's arrays. */
export interface WorkerTraceResult extends Omit<TraceResult, 'tokens' | 'answerProbs' | 'text'> {
  ids: Int32Array;
  /** For a text input: [start, end) per token. */
  offsets?: Int32Array;
  inserted?: [number, string][];
  /** For an ids input: each token's text. */
  tokenTexts?: string[];
}
export const WORKER_TOKENIZE_FIELDS: FieldKinds<WorkerTokenizeResult> = { ids: 'required', offsets: 'required', counts: 'required', inserted: 'required' };
export const WORKER_TRACE_FIELDS: FieldKinds<WorkerTraceResult> = {
  model: 'required',
  routing: 'required',
  answerLogProbs: 'required',
  lastLogits: 'optional',
  expertOutputs: 'optional',
  ms: 'required',
  ids: 'required',
  offsets: 'optional',
  inserted: 'optional',
  tokenTexts: 'optional',
};

/** Exit statuses the command line gives meaning to (the Ray driver, python/moe_scope_ray.py, reads them too). */
export const EXIT_CODES = {
  /** An eval whose run folder another live process holds (EX_TEMPFAIL: try again later). */
  locked: 75,
} as const;

/** What a Python offers the PyTorch engine (`python -m moe_scope_worker --check`). */
export interface PythonEnvironment {
  python: string;
  executable: string;
  torch?: string;
  cuda?: string | null;
  transformers?: string;
  devices?: { type: 'cuda' | 'mps'; index?: number; name: string; freeBytes?: number; totalBytes?: number }[];
  problems: string[];
  usable: boolean;
  gpu: boolean;
}

/** What the host and the CLI program against; implemented in-process and over IPC. */
export interface InferenceBackend {
  call<M extends EngineMethod>(method: M, params: EngineMethods[M]['params'], signal?: AbortSignal): Promise<EngineMethods[M]['result']>;
  /**
   * True when requests run one at a time in the order they were sent (the engine processes queue them), so
   * a caller may send the next before the last has answered.
   */
  readonly runsInArrivalOrder?: boolean;
}

export class EngineFailure extends Error {
  constructor(
    readonly code: EngineErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EngineFailure';
  }
}

// ---------------------------------------------------------------------------------------------------
// Evaluation runs (files under a run folder; shared by runner, host views and webviews)

export type TokenScope = 'all' | 'question' | 'answer';
export const TOKEN_SCOPES: readonly TokenScope[] = ['all', 'question', 'answer'];
export const TOKEN_SCOPE_LABELS: Record<TokenScope, string> = {
  all: 'every prompt token',
  question: "the question's own tokens",
  answer: 'the answer position',
};

export interface LayerSummary {
  layer: number;
  /** (token, slot) assignments per expert within the token scope. */
  activationCounts: number[];
  /** Experts with zero assignments in scope. */
  neverActivated: number[];
  /** Mean gate entropy / ln(E) over in-scope tokens. */
  entropyNormalized: number;
  entropyQuantiles: { p05: number; p25: number; p50: number; p75: number; p95: number };
  meanTop1Weight: number;
  meanTopKMass: number;
  /** Per expert: accuracy over questions whose answer-position routing used it (null when unused). */
  expertAccuracy: (number | null)[];
  /** The number of questions each expertAccuracy value rests on. */
  expertAccuracyCount: number[];
  /** Per expert: accuracy weighted by the expert's in-scope (token, slot) assignments per question. */
  expertAccuracyTokenWeighted: (number | null)[];
  /** P(b | a): row a, column b, row-major E x E; rows of never-chosen experts are 0. */
  coactivation: number[];
  /** Pruning scores folded during the run (src/analysis/expertScores.ts); absent in runs made before they existed. */
  expertScores?: ExpertScoresSummary;
}

/** Per expert of one layer (definitions in src/analysis/expertScores.ts). */
export interface ExpertScoresSummary {
  /** Sum of the applied gate weights over the expert's in-scope assignments. */
  gateWeighted: number[];
  /** MAN: mean L2 norm of the expert's unweighted output over its assignments (null when none was measured). */
  meanOutputNorm: (number | null)[];
  /** MSAN: mean squared L2 norm of the same outputs. */
  meanSquaredOutputNorm: (number | null)[];
  /** Assignments whose output norm was measured. */
  outputNormCount: number[];
  /** Weights-only criterion, |mean| / RMS of the expert's weights (runs made with eval --weight-scores). */
  weightsCriterion?: number[];
}

export interface SubjectSummary {
  subject: string;
  category: string | null;
  questions: number;
  correct: number;
  accuracy: number;
}

export interface RunSummary {
  version: 1;
  model: {
    path: string;
    family: string;
    numLayers: number;
    numExperts: number;
    topK: number;
    demo: boolean;
    /** The demo checkpoint is the trained toy, not the random one (absent otherwise). */
    demoTrained?: boolean;
    /** The decoder layer of each routing row (ModelInfo.moeLayers); absent in runs made before it was recorded. */
    moeLayers?: number[];
    numDecoderLayers?: number;
    /** The weights' precision (absent in runs made before it was recorded). */
    precision?: WeightPrecision;
  };
  dataset: { path: string; split: string; fingerprint: string };
  shots: number;
  /** How the answer letters were scored (see AnswerScoringMethod); absent in runs made before it existed. */
  answerScoring?: AnswerScoringMethod;
  tokenScope: TokenScope;
  tokenScopeDefinition: string;
  questions: number;
  complete: boolean;
  accuracy: {
    micro: number;
    macro: number;
    perSubject: Record<string, SubjectSummary>;
    perCategory: Record<string, { questions: number; correct: number; accuracy: number; subjects: number }>;
  };
  neverActivatedTotal: number;
  layers: LayerSummary[];
  /** subject -> layer -> expert share of the subject's (token, slot) assignments x k (uniform = k/E). */
  subjectSpecialisation: Record<string, number[][]>;
  definitions: Record<string, string>;
  tokens: { computed: number; padding: number; prefixReusedTokens: number };
  elapsedSeconds: number;
  /** The router intervention this run was made under (absent: the unmodified model). */
  intervention?: RouterIntervention;
}

/** Two runs side by side (moe-scope compare, the comparison view); made by src/analysis/compare.ts. */
export interface RunComparison {
  a: ComparedRun;
  b: ComparedRun;
  accuracy: {
    micro: AccuracyDelta;
    macro: AccuracyDelta;
    /** Subjects present in either run, by name. */
    perSubject: (AccuracyDelta & { subject: string; category: string | null })[];
    perCategory: (AccuracyDelta & { category: string })[];
  };
  /** McNemar's exact test on the questions both runs answered. */
  mcnemar: McNemarResult;
  activation: {
    numLayers: number;
    numExperts: number;
    tokenScope: TokenScope;
    /** [layer][expert] share of the layer's (token, slot) assignments in run A / run B, and B - A. */
    shareA: number[][];
    shareB: number[][];
    deltaShare: number[][];
  };
  /** Ways the two runs are not like for like (different model, data, shots, scope, questions). */
  warnings: string[];
  /** Questions both runs answered whose correctness differs (src/analysis/compare.ts flippedQuestions). */
  flipped?: FlippedQuestion[];
  /** Calibration comparison of the two runs' routing (src/analysis/calibration.ts), when both have the scores. */
  calibration?: CalibrationComparison;
}

/** A question one run got right and the other wrong. Letters are answer indices 0-3. */
export interface FlippedQuestion {
  id: string;
  subject: string;
  gold: number;
  predictedA: number;
  predictedB: number;
  /** 'right-to-wrong': right in A, wrong in B (what a cut broke); 'wrong-to-right' the other way. */
  direction: 'right-to-wrong' | 'wrong-to-right';
}

/**
 * How much two runs (e.g. on different calibration sets) would prune alike, per layer: for each criterion,
 * the overlap of the experts a plan (lowest ratio per layer) picks from each run, and the Jensen-Shannon
 * divergence of the layer's activation distributions.
 */
export interface CalibrationComparison {
  ratio: number;
  criteria: string[];
  layers: {
    layer: number;
    /** Jensen-Shannon divergence (base 2, in [0, 1]) of the two runs' activation-count distributions. */
    jsDivergence: number;
    /** Per criterion: |A ∩ B| / |A ∪ B| of the pruned sets (1 when both are empty), and |A ∩ B|. */
    overlap: Record<string, { jaccard: number; shared: number; prunedA: number; prunedB: number }>;
  }[];
  /** Means over layers. */
  meanJsDivergence: number;
  meanJaccard: Record<string, number>;
}

export interface ComparedRun {
  label: string;
  runDir: string;
  questions: number;
  complete: boolean;
  demo: boolean;
  demoTrained?: boolean;
  intervention?: RouterIntervention;
  /** The run's weight precision, when its summary records one. */
  precision?: WeightPrecision;
}

/** Accuracies as fractions in [0, 1]; null where a run has no question of that group. */
export interface AccuracyDelta {
  a: number | null;
  b: number | null;
  /** b - a, null unless both exist. */
  delta: number | null;
  questionsA: number;
  questionsB: number;
}

export interface McNemarResult {
  /** Questions answered in both runs (matched by question id). */
  paired: number;
  bothCorrect: number;
  bothWrong: number;
  /** Wrong in A, right in B. */
  b01: number;
  /** Right in A, wrong in B. */
  b10: number;
  /** Two-sided exact binomial p-value: min(1, 2 P(X <= min(b01, b10))), X ~ Bin(b01 + b10, 1/2); 1 when b01 + b10 = 0. */
  pValue: number;
}

// ---------------------------------------------------------------------------------------------------
// Extension host <-> webviews

export type ExportFormat = 'svg' | 'png' | 'csv' | 'json';

/** A chart or its data to save where the user chooses. data: UTF-8 text for svg/csv/json; base64 (with or without a data: prefix) for png. */
export interface ExportMessage {
  type: 'export';
  format: ExportFormat;
  name: string;
  data: string;
}

/**
 * What every view can send: 'ready' once its script runs (the host holds its messages until then) and
 * 'export'. The host's webview channel (src/host/webviewChannel.ts) answers both; each view adds its own.
 */
export type ViewToHostCommon = { type: 'ready' } | ExportMessage;

/** A trace as sent to the trace panel: the question text travels as data and is rendered as text. */
export interface TracePayload {
  requestId: number;
  sourceUri?: string;
  question?: { subject?: string; text: string; gold?: AnswerLetter };
  result: TraceResult;
}

export type HostToTraceView =
  | { type: 'trace-started'; requestId: number; label: string }
  | { type: 'trace'; payload: TracePayload }
  | { type: 'trace-failed'; requestId: number; message: string }
  | { type: 'highlight-token'; index: number | null }
  | { type: 'theme-changed' }
  /** Point the expert lens at this expert (from the side-panel heatmap); layer: the row clicked there. */
  | { type: 'lens-expert'; layer: number | null; expert: number };

export type TraceViewToHost =
  | ViewToHostCommon
  | { type: 'hover-token'; index: number | null }
  | { type: 'reveal-token'; index: number }
  | { type: 'retry' }
  /** Re-run the current trace in the all-experts analysis mode (every expert on every token). */
  | { type: 'analyze-experts' };

export interface HeatmapData {
  source: 'trace' | 'run';
  label: string;
  numLayers: number;
  numExperts: number;
  /** Experts chosen per token; k/E is the uniform share. */
  topK?: number;
  /** [layer][expert] counts. */
  counts: number[][];
  /** The decoder layer of each row (ModelInfo.moeLayers); absent: row i is layer i. */
  layerOfRow?: number[];
  /** Present for runs. Accuracies are fractions in [0, 1]. */
  expertAccuracy?: (number | null)[][];
  expertAccuracyCount?: number[][];
  /** Per layer and expert: the subjects with the highest specialisation (share of the subject's (token, slot) assignments x k). */
  topSubjects?: { subject: string; share: number }[][][];
  tokenScope?: TokenScope;
}

export type HostToHeatmapView = { type: 'heatmap'; trace: HeatmapData | null; run: HeatmapData | null } | { type: 'select-source'; source: 'trace' | 'run' };

export type HeatmapViewToHost =
  | ViewToHostCommon
  | { type: 'select-source'; source: 'trace' | 'run' }
  /** "Show in the trace's expert lens": the trace panel's lens picks this expert (and layer). */
  | { type: 'lens-expert'; layer: number; expert: number };

export type HostToStructureView =
  | { type: 'structure-progress'; message: string }
  | { type: 'structure'; analysis: WeightAnalysis; modelLabel: string }
  | { type: 'structure-failed'; message: string };
export type StructureViewToHost = ViewToHostCommon;

export type HostToSummaryView = { type: 'summary'; summary: RunSummary; runDir: string };
export type SummaryViewToHost =
  | ViewToHostCommon
  /** "New experiment from this run..." */
  | { type: 'new-experiment' };

export type HostToCompareView =
  | { type: 'comparison'; comparison: RunComparison }
  /** A flipped question traced under run A's and run B's interventions, shown side by side. */
  | { type: 'flipped-traces'; id: string; before: TraceResult; after: TraceResult }
  | { type: 'flipped-failed'; id: string; message: string };
export type CompareViewToHost =
  | ViewToHostCommon
  /** Trace a flipped question before and after the cut. */
  | { type: 'open-flipped'; id: string };

// ---------------------------------------------------------------------------------------------------
// Helpers used on several sides

/** Positions the longest answer letter adds after the prompt when scored as a continuation (its tokens but the last). */
export function answerExtraPositions(scoring: AnswerScoring): number {
  return Math.max(...scoring.letterTokenIds.map((ids) => ids.length)) - 1;
}

export function isEngineToHost(value: unknown): value is EngineToHost {
  const t = (value as { type?: unknown } | null)?.type;
  return t === 'response' || t === 'log' || t === 'ready';
}
