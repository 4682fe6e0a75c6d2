/**
 * An engine without a model: it loads a checkpoint's config and tokenizer (both real) and answers every
 * score request at once with arrays of the right shapes. What a run costs around the forward pass is
 * then all there is to measure (bench/nullModel.ts) or to test (the plan cache, records, merges).
 */
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import { loadTokenizer, type MoeTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import {
  EngineFailure,
  dispatchEngineMethod,
  type EngineHandlers,
  type EngineMethod,
  type EngineMethods,
  type InferenceBackend,
  type ModelInfo,
  type ScoreItemResult,
  type ScoreParams,
  type ScoreResult,
} from '../../src/shared/protocol';

export class NullEngine implements InferenceBackend {
  private info: ModelInfo | null = null;
  private tokenizer: MoeTokenizer | null = null;
  private prefixKey: string | null = null;
  /** Calls per method, for tests that check what the runner asked for. */
  readonly calls: Record<string, number> = {};

  private readonly handlers: EngineHandlers = {
    load: async ({ modelPath }) => {
      const t0 = Date.now();
      const ck = Checkpoint.open(modelPath);
      this.tokenizer = await loadTokenizer(ck.dir);
      const a = ck.arch;
      this.info = {
        path: ck.dir,
        family: a.family,
        modelType: a.modelType,
        numLayers: a.numLayers,
        numExperts: a.numExperts,
        topK: a.topK,
        hiddenSize: a.hiddenSize,
        vocabSize: a.vocabSize,
        maxPositions: a.maxPositions,
        normTopKProb: a.normTopKProb,
        sharedExperts: a.sharedExpert ? 1 : 0,
        executionProvider: 'cpu',
        dtype: 'float32',
        engine: 'onnxruntime',
        device: 'null model (no forward pass)',
        answerScoring: this.tokenizer.answerScoring(),
        loadMs: Date.now() - t0,
      };
      this.prefixKey = null;
      return this.info;
    },
    tokenize: ({ texts }) => {
      const tok = this.requireTokenizer();
      return texts.map((t) => {
        const e = tok.encode(t);
        return { ids: e.ids, tokens: e.tokens };
      });
    },
    trace: () => {
      throw new EngineFailure('bad-input', 'the null engine does not trace');
    },
    score: (params) => this.score(params),
    analyzeWeights: () => {
      throw new EngineFailure('bad-input', 'the null engine has no weights');
    },
    shutdown: () => ({ ok: true }),
  };

  call<M extends EngineMethod>(method: M, params: EngineMethods[M]['params'], signal?: AbortSignal): Promise<EngineMethods[M]['result']> {
    this.calls[method] = (this.calls[method] ?? 0) + 1;
    return dispatchEngineMethod(this.handlers, method, params, signal);
  }

  private requireTokenizer(): MoeTokenizer {
    if (!this.tokenizer) throw new EngineFailure('not-loaded', 'no model loaded');
    return this.tokenizer;
  }

  private score(params: ScoreParams): ScoreResult {
    const info = this.info;
    if (!info) throw new EngineFailure('not-loaded', 'no model loaded');
    const P = params.prefix?.ids.length ?? 0;
    const prefixReused = !!params.prefix && params.prefix.key === this.prefixKey;
    this.prefixKey = params.prefix?.key ?? null;
    const L = info.numLayers;
    const E = info.numExperts;
    const K = info.topK;
    const longest = Math.max(...params.items.map((i) => i.ids.length));
    let computed = prefixReused ? 0 : P;
    const items = params.items.map((item): ScoreItemResult => {
      const positions = params.routingPositions ?? 'all';
      const T = positions === 'last' ? 1 : positions === 'item' ? item.ids.length : P + item.ids.length;
      const routingStart = positions === 'last' ? P + item.ids.length - 1 : positions === 'item' ? P : 0;
      const topExperts = new Uint16Array(L * T * K);
      const topWeights = new Float32Array(L * T * K).fill(1 / K);
      const entropy = new Float32Array(L * T).fill(Math.log(E) / 2);
      // Distinct experts per slot, varying with the last token so that counts differ between questions.
      const seed = item.ids[item.ids.length - 1] ?? 0;
      for (let r = 0; r < L * T; r++) for (let k = 0; k < K; k++) topExperts[r * K + k] = (seed + r + k) % E;
      computed += longest;
      return {
        key: item.key,
        answerLogProbs: [0, 1, 2, 3].map((c) => -Math.log(4) - ((seed + c) % 4) * 0.01) as [number, number, number, number],
        routing: { numLayers: L, numTokens: T, numExperts: E, topK: K, topExperts, topWeights, entropy },
        routingStart,
        promptTokens: P + item.ids.length,
      };
    });
    const padding = items.length * longest - params.items.reduce((a, i) => a + i.ids.length, 0);
    return { items, computedTokens: computed, paddingTokens: padding, prefixReused, ms: 0 };
  }
}
