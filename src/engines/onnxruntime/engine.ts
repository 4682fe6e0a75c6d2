/**
 * The engine: one loaded checkpoint, its tokenizer and its ONNX Runtime session. Runs inside the
 * inference process (and in-process for the command line); everything it returns is plain data from
 * the shared protocol.
 */
import * as ort from 'onnxruntime-node';
import { Checkpoint } from './checkpoint';
import { createRuntime, createExpertSession, createInterventionSession, type Runtime } from './runtime';
import { InterventionError, interventionKey, interventionRows, isEmptyIntervention, validateIntervention } from '../../analysis/interventions';
import { routingFromLogits, concatRouting, logSoftmaxAt, softmax4 } from './routing';
import { loadTokenizer } from './formats/tokenizer';
import { concatSlots, gatherRows, pickChosenNorms } from './chosenExpertNorms';
import { cachedWeightAnalysis } from './weightAnalysis';
import * as path from 'node:path';
import { defaultCacheDir } from './runtime';
import { ropeTables as ropeTablesFor } from './rope';
import type { MoeArchitecture } from './families';
import { kvCacheDims, moeLayersOf, rescalesToOne, ropeDim, routingDescription, sharedExpertCount } from './familyFeatures';
import { routingFromSelection, type ObservedSelection } from './routingObserved';
import { TRAINED_DEMO_CONFIG_FIELD } from '../../shared/demoLabel';
import {
  EngineFailure,
  ROUTING_POSITIONS,
  type EngineMethod,
  type EngineHandlers,
  type EngineMethods,
  type InferenceBackend,
  dispatchEngineMethod,
  spansOfDecodedTokens,
  type WeightAnalysis,
  type LoadOptions,
  type ModelInfo,
  type RouterIntervention,
  type Routing,
  answerExtraPositions,
  type AnswerScoring,
  type ScoreParams,
  type ScoreResult,
  type TokenSpan,
  type TokenizeResult,
  type TraceOptions,
  type TraceResult,
} from '../../shared/protocol';

export interface EngineTokenizer {
  encode(text: string): { ids: number[]; tokens: { id: number; text: string; start: number; end: number }[] };
  decode(ids: number[]): string;
  answerScoring(): AnswerScoring;
}

interface KvCache {
  /** Per layer: [1, kvHeads, P, headDim] keys and values. */
  keys: Float32Array[];
  values: Float32Array[];
  length: number;
}

interface PrefixCache {
  key: string;
  /** The intervention the prefix was computed under (interventionKey); '' for none. */
  interventionKey: string;
  ids: number[];
  kv: KvCache;
  routing: Routing;
  /** The chosen experts' output norms of the prefix, when a score call asked for them. */
  expertOutputNorms?: Float32Array;
}

interface ForwardOutput {
  logits: Float32Array;
  /** Per layer [B*S, hidden], when asked for. */
  moeInputs: Float32Array[];
  /** Per routing row (MoE layer): [B*S, experts]. */
  routerLogits: Float32Array[];
  /** The graph's own selection, for families whose routing the graph computes. */
  selection: ObservedSelection | null;
  present: KvCache;
}

export class Engine implements InferenceBackend {
  private ckpt: Checkpoint | null = null;
  private runtime: Runtime | null = null;
  private tokenizer: EngineTokenizer | null = null;
  private info: ModelInfo | null = null;
  private prefix: PrefixCache | null = null;
  private cacheDir = defaultCacheDir();
  private expertSessions = new Map<boolean, ort.InferenceSession>();
  private interventionSession: ort.InferenceSession | null = null;

  constructor(private readonly log: (level: 'info' | 'warn' | 'error', message: string) => void = () => {}) {}

  /** The protocol's methods, one handler each (the inference process and the CLI call through here). */
  private readonly handlers: EngineHandlers = {
    load: (p) => this.load(p.modelPath, p.options),
    tokenize: (p) => this.tokenize(p.texts),
    trace: (p, signal) => this.trace(p.input, p.options, signal),
    score: (p, signal) => this.score(p, signal),
    analyzeWeights: (p, signal) => this.analyzeWeights(p.layers, signal),
    shutdown: async () => {
      await this.dispose();
      return { ok: true };
    },
  };

  call<M extends EngineMethod>(method: M, params: EngineMethods[M]['params'], signal?: AbortSignal): Promise<EngineMethods[M]['result']> {
    return dispatchEngineMethod(this.handlers, method, params, signal);
  }

  /** Static expert-structure analysis of the loaded checkpoint's weights, cached in the cache folder. */
  analyzeWeights(layers: number[] | undefined, signal?: AbortSignal): Promise<WeightAnalysis> {
    return cachedWeightAnalysis(this.requireCheckpoint(), path.join(this.cacheDir, 'weight-analysis'), layers, signal, (l) =>
      this.log('info', `analysed the weights of layer ${l}`),
    );
  }

  async load(modelPath: string, options: LoadOptions): Promise<ModelInfo> {
    const t0 = Date.now();
    let ckpt: Checkpoint;
    let tokenizer: EngineTokenizer;
    try {
      ckpt = Checkpoint.open(modelPath);
      tokenizer = await loadTokenizer(ckpt.dir);
    } catch (e) {
      throw new EngineFailure('bad-model', (e as Error).message);
    }
    let answerScoring: AnswerScoring;
    try {
      answerScoring = tokenizer.answerScoring();
    } catch (e) {
      throw new EngineFailure('bad-model', `${ckpt.dir}/tokenizer.json: ${(e as Error).message}`);
    }
    await this.dispose();
    const runtime = await createRuntime(ckpt, { ...options, log: (m) => this.log('info', m) });
    this.cacheDir = options.cacheDir ?? defaultCacheDir();
    const a = ckpt.arch;
    const demoNote = ckpt.config.moe_scope_demo;
    this.ckpt = ckpt;
    this.runtime = runtime;
    this.tokenizer = tokenizer;
    this.prefix = null;
    this.info = {
      path: ckpt.dir,
      family: a.family,
      modelType: a.modelType,
      numLayers: moeLayersOf(a).length,
      moeLayers: moeLayersOf(a),
      numDecoderLayers: a.numLayers,
      routing: routingDescription(a),
      numExperts: a.numExperts,
      topK: a.topK,
      hiddenSize: a.hiddenSize,
      vocabSize: a.vocabSize,
      maxPositions: a.maxPositions,
      normTopKProb: rescalesToOne(a),
      sharedExperts: sharedExpertCount(a),
      executionProvider: runtime.provider,
      providerNote: runtime.providerNote,
      providerDecisions: runtime.decisions,
      adapterName: runtime.adapter?.name,
      expertFormulation: runtime.expertFormulation,
      dtype: runtime.dtype,
      precision: runtime.precision,
      precisionWhy: runtime.precisionWhy,
      engine: 'onnxruntime',
      device: runtime.adapter?.name ? `webgpu ${runtime.adapter.name}` : runtime.provider,
      answerScoring,
      demo: typeof demoNote === 'string' ? { note: demoNote, ...(ckpt.config[TRAINED_DEMO_CONFIG_FIELD] === true ? { trained: true } : {}) } : undefined,
      loadMs: Date.now() - t0,
    };
    return this.info;
  }

  tokenize(texts: string[]): TokenizeResult[] {
    const tok = this.requireTokenizer();
    return texts.map((t) => {
      const enc = tok.encode(t);
      return { ids: enc.ids, tokens: enc.tokens };
    });
  }

  async trace(input: { text: string } | { ids: number[] }, options: TraceOptions, signal?: AbortSignal): Promise<TraceResult> {
    const t0 = Date.now();
    const info = this.requireInfo();
    const arch = this.requireCheckpoint().arch;
    let ids: number[];
    let tokens: TokenSpan[];
    if ('text' in input) {
      const enc = this.requireTokenizer().encode(input.text);
      ids = enc.ids;
      tokens = enc.tokens;
    } else {
      ids = input.ids;
      tokens = this.spansForIds(ids);
    }
    if (ids.length === 0) throw new EngineFailure('bad-input', 'nothing to trace: the text encodes to no tokens');
    this.checkIds(ids, arch);
    checkAborted(signal);
    const routerRows = this.routerRows(options.intervention);
    const continuation = info.answerScoring.method === 'continuation';
    if (continuation) this.checkIds(ids, arch, answerExtraPositions(info.answerScoring));
    const out = await this.forward([ids], null, [ids.length - 1], { wantPresent: continuation, wantMoeInputs: !!options.allExperts, routerRows });
    checkAborted(signal);
    const rows = Array.from({ length: ids.length }, (_, i) => i);
    const routing = this.routingOf(out, rows, options.includeProbs || !!options.allExperts);
    const answerLogProbs = await this.answerLogProbs(out.logits, 0, continuation ? out.present : null, routerRows);
    const result: TraceResult = {
      model: info,
      text: 'text' in input ? input.text : undefined,
      tokens,
      routing,
      answerLogProbs,
      answerProbs: softmax4(answerLogProbs),
      lastLogits: options.includeLastLogits ? out.logits.slice(0, arch.vocabSize) : undefined,
      ms: 0,
    };
    if (options.allExperts) result.expertOutputs = (await this.expertOutputs(out.moeInputs, ids.length, false, signal)).stats;
    result.ms = Date.now() - t0;
    return result;
  }

  /**
   * Every expert's unweighted output for every token's MoE input (the analysis mode of "A Closer Look
   * into MoE"): per layer and token, the L2 norm of each expert's output and the mean angular similarity
   * between different experts' outputs. With includeOutputs, also the outputs themselves (tests).
   */
  async expertOutputs(moeInputs: Float32Array[], T: number, includeOutputs: boolean, signal?: AbortSignal) {
    const arch = this.requireCheckpoint().arch;
    const rt = this.runtime!;
    let session = this.expertSessions.get(includeOutputs);
    if (!session) {
      session = await createExpertSession(rt, includeOutputs);
      this.expertSessions.set(includeOutputs, session);
    }
    const E = arch.numExperts;
    const L = moeLayersOf(arch).length;
    const norms = new Float32Array(L * T * E);
    const similarity = new Float32Array(L * T);
    const outputs: Float32Array[] = [];
    // One run over all layers: ORT executes the whole graph whatever is fetched, and frees each layer's
    // [E, T, hidden] intermediate once its norms and similarities are reduced.
    checkAborted(signal);
    const feeds: Record<string, ort.Tensor> = {};
    for (let l = 0; l < L; l++) feeds[`x_${l}`] = new ort.Tensor('float32', moeInputs[l], [T, arch.hiddenSize]);
    const fetch: string[] = [];
    for (let l = 0; l < L; l++) fetch.push(`norms_${l}`, `angsum_${l}`, ...(includeOutputs ? [`outputs_${l}`] : []));
    const out = await session.run(feeds, fetch);
    for (let l = 0; l < L; l++) {
      const n = out[`norms_${l}`].data as Float32Array; // [E, T]
      for (let e = 0; e < E; e++) for (let t = 0; t < T; t++) norms[(l * T + t) * E + e] = n[e * T + t];
      const a = out[`angsum_${l}`].data as Float32Array;
      for (let t = 0; t < T; t++) similarity[l * T + t] = (a[t] - E) / (E * (E - 1));
      if (includeOutputs) outputs.push(out[`outputs_${l}`].data as Float32Array);
    }
    return { stats: { numLayers: L, numTokens: T, numExperts: E, norms, meanAngularSimilarity: similarity }, outputs };
  }

  /** For tests: the decoder's MoE inputs and routed outputs of one sequence, with its routing. */
  async moeBlockIO(ids: number[]): Promise<{ moeInputs: Float32Array[]; moeOutputs: Float32Array[]; routing: Routing }> {
    this.requireCheckpoint();
    const out = await this.forward([ids], null, [ids.length - 1], { wantPresent: false, wantMoeInputs: true, wantMoeOutputs: true });
    const rows = Array.from({ length: ids.length }, (_, i) => i);
    return { moeInputs: out.moeInputs, moeOutputs: out.moeOutputs, routing: this.routingOf(out, rows, true) };
  }

  /**
   * Scores a batch of prompts that share a prefix. The prefix's keys and values are computed once per
   * prefix key and reused across calls; its routing is prepended to every item's routing, which is
   * exact because a causal model's prefix computation does not depend on what follows.
   */
  async score(params: ScoreParams, signal?: AbortSignal): Promise<ScoreResult> {
    const t0 = Date.now();
    const info = this.requireInfo();
    const arch = this.requireCheckpoint().arch;
    if (params.items.length === 0) return { items: [], computedTokens: 0, paddingTokens: 0, prefixReused: false, ms: 0 };
    let computed = 0;
    let prefixReused = false;
    let prefix: PrefixCache | null = null;
    const routerRows = this.routerRows(params.intervention);
    const ivKey = interventionKey(params.intervention);
    const positions = params.routingPositions ?? 'all';
    // The prefix's norms are needed only when its routing is returned.
    const wantNorms = !!params.expertOutputNorms;
    const prefixNorms = wantNorms && positions === 'all';
    if (params.prefix && params.prefix.ids.length > 0) {
      if (
        this.prefix &&
        this.prefix.key === params.prefix.key &&
        this.prefix.interventionKey === ivKey &&
        sameIds(this.prefix.ids, params.prefix.ids) &&
        (!prefixNorms || this.prefix.expertOutputNorms)
      ) {
        prefix = this.prefix;
        prefixReused = true;
      } else {
        const ids = params.prefix.ids;
        this.checkIds(ids, arch);
        const out = await this.forward([ids], null, [ids.length - 1], { wantPresent: true, routerRows, wantMoeInputs: prefixNorms });
        computed += ids.length;
        const rows = Array.from({ length: ids.length }, (_, i) => i);
        const routing = this.routingOf(out, rows, false);
        prefix = {
          key: params.prefix.key,
          interventionKey: ivKey,
          ids: [...ids],
          kv: out.present,
          routing,
          expertOutputNorms: prefixNorms
            ? pickChosenNorms((await this.expertOutputs(out.moeInputs, ids.length, false, signal)).stats.norms, ids.length, 0, routing)
            : undefined,
        };
        this.prefix = prefix;
      }
    }
    checkAborted(signal);
    const P = prefix?.kv.length ?? 0;
    for (const item of params.items) {
      if (item.ids.length === 0) throw new EngineFailure('bad-input', `item ${item.key} has no tokens after the prefix`);
      this.checkIds(item.ids, arch, P);
    }
    const S = Math.max(...params.items.map((i) => i.ids.length));
    const B = params.items.length;
    const logitRows = params.items.map((it, b) => b * S + it.ids.length - 1);
    const continuation = info.answerScoring.method === 'continuation';
    if (continuation) for (const item of params.items) this.checkIds(item.ids, arch, P + answerExtraPositions(info.answerScoring));
    const out = await this.forward(
      params.items.map((i) => i.ids),
      prefix ? prefix.kv : null,
      logitRows,
      { wantPresent: continuation, routerRows, wantMoeInputs: wantNorms },
    );
    checkAborted(signal);
    computed += B * S;
    const real = params.items.reduce((a, i) => a + i.ids.length, 0);
    if (!ROUTING_POSITIONS.includes(positions))
      throw new EngineFailure('bad-input', `score: routingPositions must be one of ${ROUTING_POSITIONS.join(', ')}, not ${JSON.stringify(positions)}`);
    const items: ScoreResult['items'] = [];
    const itemRows = params.items.map((item, b) => {
      const first = positions === 'last' ? item.ids.length - 1 : 0;
      return Array.from({ length: item.ids.length - first }, (_, i) => b * S + first + i);
    });
    // One all-experts run over every returned position of the batch; item b's rows start at normOffsets[b].
    const normOffsets = itemRows.map((_, b) => itemRows.slice(0, b).reduce((a, r) => a + r.length, 0));
    const allRows = itemRows.flat();
    const norms = wantNorms ? (await this.expertOutputs(gatherRows(out.moeInputs, allRows, arch.hiddenSize), allRows.length, false, signal)).stats.norms : null;
    for (const [b, item] of params.items.entries()) {
      const n = item.ids.length;
      const first = positions === 'last' ? n - 1 : 0;
      const rows = itemRows[b];
      const own = this.routingOf(out, rows, false);
      const kv = continuation ? kvRow(out.present, b, B, P + item.ids.length, arch) : null;
      const logp = await this.answerLogProbs(out.logits, b * arch.vocabSize, kv, routerRows);
      if (kv) computed += answerExtraRows(info.answerScoring);
      checkAborted(signal);
      const withPrefix = positions === 'all' && prefix;
      const ownNorms = norms ? pickChosenNorms(norms, allRows.length, normOffsets[b], own) : undefined;
      items.push({
        key: item.key,
        answerLogProbs: logp,
        routing: withPrefix ? concatRouting([withPrefix.routing, own]) : own,
        routingStart: withPrefix ? 0 : P + first,
        promptTokens: P + n,
        ...(ownNorms
          ? {
              expertOutputNorms: withPrefix
                ? concatSlots(
                    [
                      { values: withPrefix.expertOutputNorms!, numTokens: withPrefix.routing.numTokens },
                      { values: ownNorms, numTokens: own.numTokens },
                    ],
                    arch.numLayers,
                    arch.topK,
                  )
                : ownNorms,
            }
          : {}),
      });
    }
    return { items, computedTokens: computed, paddingTokens: B * S - real, prefixReused, ms: Date.now() - t0 };
  }

  /**
   * log P(" A".." D" | context) from the context's last-position logits (at `offset` in `logits`). For
   * 'continuation' scoring, `context` is the context's keys and values: the letters' further tokens run
   * as one batch on top of it, and each letter's log-probability is the sum over its tokens.
   */
  private async answerLogProbs(
    logits: Float32Array,
    offset: number,
    context: KvCache | null,
    routerRows: Float32Array[] | null,
  ): Promise<[number, number, number, number]> {
    const { vocabSize: V } = this.requireCheckpoint().arch;
    const letters = this.requireInfo().answerScoring.letterTokenIds;
    const total = logSoftmaxAt(
      logits,
      offset,
      V,
      letters.map((ids) => ids[0]),
    );
    const longer = [0, 1, 2, 3].filter((i) => letters[i].length > 1);
    if (context && longer.length > 0) {
      // Row b feeds letter i's tokens but the last; position j predicts token j + 1.
      const rows = longer.map((i) => letters[i].slice(0, -1));
      const S = Math.max(...rows.map((r) => r.length));
      const logitRows = rows.flatMap((r, b) => r.map((_, j) => b * S + j));
      // The letters' further tokens run under the same router intervention as their context.
      const out = await this.forward(rows, context, logitRows, { wantPresent: false, routerRows });
      let k = 0;
      longer.forEach((i, b) => {
        for (let j = 0; j < rows[b].length; j++, k++) total[i] += logSoftmaxAt(out.logits, k * V, V, [letters[i][j + 1]])[0];
      });
    } else if (longer.length > 0) {
      throw new EngineFailure('internal', 'multi-token answer letters need the context keys and values');
    }
    return total as [number, number, number, number];
  }

  async dispose(): Promise<void> {
    this.prefix = null;
    for (const s of this.expertSessions.values()) await s.release();
    this.expertSessions.clear();
    if (this.interventionSession) {
      await this.interventionSession.release();
      this.interventionSession = null;
    }
    if (this.runtime) {
      await this.runtime.session.release();
      this.runtime = null;
    }
  }

  /**
   * NaN or infinity in the router logits or the output logits would otherwise surface as "A NaN%" or an
   * entropy of 0 reported as a result. The first non-finite layer is named, and the checkpoint's weights
   * up to it are searched for the cause (only now, when something is already wrong).
   */
  private requireFinite(routerLogits: Float32Array[], logits: Float32Array, seqLen: number, routerRows?: Float32Array[] | null): void {
    const arch = this.ckpt!.arch;
    let where: string | null = null;
    let layer = arch.numLayers - 1;
    const moeLayers = moeLayersOf(arch);
    for (let row = 0; row < routerLogits.length && where === null; row++) {
      const l = moeLayers[row];
      // An expert masked by an intervention has a router logit of -Infinity by design.
      const masked = routerRows?.[row];
      const i = routerLogits[row].findIndex((v, j) => !Number.isFinite(v) && !(v === -Infinity && masked?.[j % arch.numExperts] === -Infinity));
      if (i >= 0) {
        where = `the router logits of layer ${l} (tensor router_logits_${l}) are not finite: ${routerLogits[row][i]} for token ${Math.floor(i / arch.numExperts) % seqLen}, expert ${i % arch.numExperts}`;
        layer = l;
      }
    }
    if (where === null) {
      const i = logits.findIndex((v) => !Number.isFinite(v));
      if (i < 0) return;
      where = `the output logits (tensor logits) are not finite: ${logits[i]} for vocabulary entry ${i % arch.vocabSize}`;
    }
    throw new EngineFailure('non-finite', `${this.ckpt!.dir}: ${where}; ${this.nonFiniteCause(layer)}`);
  }

  private nonFiniteCause(upToLayer: number): string {
    const ckpt = this.ckpt!;
    const layerOf = (name: string) => Number(/(?:^|\.)(?:layers|blocks)\.(\d+)\./.exec(name)?.[1] ?? -1);
    for (const { name } of ckpt.expectedTensors()) {
      if (layerOf(name) > upToLayer) continue;
      const values = ckpt.readFloat32(name);
      const bad = values.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) return `cause: checkpoint tensor "${name}" (${ckpt.tensor(name).file}) holds ${values[bad]} at element ${bad}`;
    }
    return 'no checkpoint weight up to that layer is NaN or infinite, so the computation itself overflowed: check config.json values such as rope_theta and rms_norm_eps';
  }

  /**
   * One run of the graph on right-padded sequences `batch` after an optional cached prefix (shared by
   * every row). Padding is masked out of attention; its routing rows are simply never read.
   */
  private async forward(
    batch: number[][],
    past: KvCache | null,
    logitRows: number[],
    opts: { wantPresent: boolean; wantMoeInputs?: boolean; wantMoeOutputs?: boolean; routerRows?: Float32Array[] | null },
  ): Promise<ForwardOutput & { moeOutputs: Float32Array[] }> {
    const rt = this.runtime!;
    let session = rt.session;
    if (opts.routerRows) {
      this.interventionSession ??= await createInterventionSession(rt);
      session = this.interventionSession;
    }
    const arch = this.ckpt!.arch;
    const B = batch.length;
    const S = Math.max(...batch.map((r) => r.length));
    const P = past?.length ?? 0;
    const Tt = P + S;
    const D = ropeDim(arch);
    const cache = kvCacheDims(arch);
    const moeLayers = moeLayersOf(arch);
    const ids = new BigInt64Array(B * S);
    for (let b = 0; b < B; b++) for (let i = 0; i < S; i++) ids[b * S + i] = BigInt(batch[b][i] ?? 0);
    const { cos, sin } = ropeTablesFor(arch.rope, D, B, S, P);
    const bias = new Float32Array(B * S * Tt);
    for (let b = 0; b < B; b++) {
      const len = batch[b].length;
      for (let i = 0; i < S; i++) {
        const row = (b * S + i) * Tt;
        for (let j = 0; j < S; j++) if (j > i || j >= len) bias[row + P + j] = -1e9;
        if (arch.slidingWindow !== null) for (let j = 0; j < P + i - arch.slidingWindow + 1; j++) bias[row + j] = -1e9;
      }
    }
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, S]),
      rope_cos: new ort.Tensor('float32', cos, [B, 1, S, D]),
      rope_sin: new ort.Tensor('float32', sin, [B, 1, S, D]),
      attention_bias: new ort.Tensor('float32', bias, [B, 1, S, Tt]),
      logits_index: new ort.Tensor('int64', BigInt64Array.from(logitRows.map(BigInt)), [logitRows.length]),
    };
    for (let l = 0; l < arch.numLayers; l++) {
      for (const [name, src, width] of [
        [`past_key_${l}`, past?.keys[l], cache.keyDim],
        [`past_value_${l}`, past?.values[l], cache.valueDim],
      ] as const) {
        const size = cache.heads * P * width;
        const data = new Float32Array(B * size);
        if (src) for (let b = 0; b < B; b++) data.set(src, b * size);
        feeds[name] = new ort.Tensor('float32', data, [B, cache.heads, P, width]);
      }
    }
    if (opts.routerRows) moeLayers.forEach((l, row) => (feeds[`router_bias_${l}`] = new ort.Tensor('float32', opts.routerRows![row], [arch.numExperts])));
    const fetches = ['logits'];
    for (const l of moeLayers) fetches.push(`router_logits_${l}`);
    if (arch.router) for (const l of moeLayers) fetches.push(`topk_index_${l}`, `topk_weight_${l}`);
    if (opts.wantPresent) for (let l = 0; l < arch.numLayers; l++) fetches.push(`present_key_${l}`, `present_value_${l}`);
    if (opts.wantMoeInputs) for (const l of moeLayers) fetches.push(`moe_input_${l}`);
    if (opts.wantMoeOutputs) for (const l of moeLayers) fetches.push(`moe_output_${l}`);
    const out = await session.run(feeds, fetches);
    const present: KvCache = { keys: [], values: [], length: Tt };
    if (opts.wantPresent) {
      for (let l = 0; l < arch.numLayers; l++) {
        present.keys.push(out[`present_key_${l}`].data as Float32Array);
        present.values.push(out[`present_value_${l}`].data as Float32Array);
      }
    }
    const routerLogits = moeLayers.map((l) => out[`router_logits_${l}`].data as Float32Array);
    this.requireFinite(routerLogits, out.logits.data as Float32Array, S, opts.routerRows);
    const layerOutputs = (prefix: string, wanted?: boolean) => (wanted ? moeLayers.map((l) => out[`${prefix}_${l}`].data as Float32Array) : []);
    return {
      logits: out.logits.data as Float32Array,
      routerLogits,
      selection: arch.router
        ? {
            indices: moeLayers.map((l) => out[`topk_index_${l}`].data as BigInt64Array),
            weights: moeLayers.map((l) => out[`topk_weight_${l}`].data as Float32Array),
          }
        : null,
      present,
      moeInputs: layerOutputs('moe_input', opts.wantMoeInputs),
      moeOutputs: layerOutputs('moe_output', opts.wantMoeOutputs),
    };
  }

  /** The values added to each layer's router logits, or null (the plain graph) for no intervention. */
  private routerRows(iv: RouterIntervention | undefined): Float32Array[] | null {
    if (!iv || isEmptyIntervention(iv)) return null;
    const arch = this.requireCheckpoint().arch;
    // Interventions address routing rows (MoE layers), as the routing they change does.
    const shape = { numLayers: moeLayersOf(arch).length, numExperts: arch.numExperts, topK: arch.topK };
    try {
      validateIntervention(iv, shape, 'router intervention');
    } catch (e) {
      if (e instanceof InterventionError) throw new EngineFailure('bad-input', e.message);
      throw e;
    }
    return interventionRows(iv, shape);
  }

  /** The routing of `rows` as the graph computed it: the MoE operator's rule, or the graph's own selection. */
  private routingOf(out: ForwardOutput, rows: ArrayLike<number>, includeProbs: boolean): Routing {
    const arch = this.requireCheckpoint().arch;
    if (out.selection && arch.router)
      return routingFromSelection(
        out.routerLogits,
        out.selection,
        rows,
        { numExperts: arch.numExperts, topK: arch.topK, score: arch.router.score },
        includeProbs,
      );
    return routingFromLogits(out.routerLogits, rows, arch, includeProbs);
  }

  private spansForIds(ids: number[]): TokenSpan[] {
    const tok = this.requireTokenizer();
    return spansOfDecodedTokens(ids, (i) => tok.decode([ids[i]]));
  }

  private checkIds(ids: number[], arch: MoeArchitecture, offset = 0): void {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= arch.vocabSize)
        throw new EngineFailure('bad-input', `token id ${id} is outside the vocabulary (0..${arch.vocabSize - 1})`);
    }
    if (offset + ids.length > arch.maxPositions) {
      throw new EngineFailure('bad-input', `${offset + ids.length} tokens exceed the model's context of ${arch.maxPositions} positions`);
    }
  }

  private requireCheckpoint(): Checkpoint {
    if (!this.ckpt) throw new EngineFailure('not-loaded', 'no model is loaded');
    return this.ckpt;
  }
  private requireTokenizer(): EngineTokenizer {
    if (!this.tokenizer) throw new EngineFailure('not-loaded', 'no model is loaded');
    return this.tokenizer;
  }
  private requireInfo(): ModelInfo {
    if (!this.info || !this.runtime) throw new EngineFailure('not-loaded', 'no model is loaded');
    return this.info;
  }
}

/** Rotary tables for positions P..P+S-1 of this architecture (see rope.ts). */
export function ropeTables(arch: Pick<MoeArchitecture, 'headDim' | 'rope'>, B: number, S: number, P: number): { cos: Float32Array; sin: Float32Array } {
  return ropeTablesFor(arch.rope, arch.headDim, B, S, P);
}

/** Tokens computed per question to score the letters beyond their first token. */
function answerExtraRows(scoring: AnswerScoring): number {
  const rows = scoring.letterTokenIds.filter((ids) => ids.length > 1);
  return rows.length === 0 ? 0 : rows.length * Math.max(...rows.map((ids) => ids.length - 1));
}

/** Row b of a batch's present keys/values ([B, kvHeads, T, headDim] per layer), its first `length` positions. */
function kvRow(present: KvCache, b: number, B: number, length: number, arch: MoeArchitecture): KvCache {
  const { heads: Hk, keyDim, valueDim } = kvCacheDims(arch);
  const T = present.length;
  const take = (D: number) => (all: Float32Array) => {
    const out = new Float32Array(Hk * length * D);
    for (let h = 0; h < Hk; h++) out.set(all.subarray((b * Hk + h) * T * D, ((b * Hk + h) * T + length) * D), h * length * D);
    return out;
  };
  if (present.keys.length === 0 || present.keys[0].length !== B * Hk * T * keyDim)
    throw new EngineFailure('internal', 'present keys/values have an unexpected size');
  return { keys: present.keys.map(take(keyDim)), values: present.values.map(take(valueDim)), length };
}

function sameIds(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function checkAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new EngineFailure('cancelled', 'the request was cancelled');
}
