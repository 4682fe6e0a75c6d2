/**
 * Architecture features beyond the original four families, as plain data the graph builder and the
 * engine read: which decoder layers are MoE, routing computed in the graph (sigmoid scores, a bias used
 * only to choose, group-limited top-k, routed scaling, p-norm renormalisation), multi-head latent
 * attention, partial and interleaved rotary embeddings. Derived shapes live here too, so that every
 * caller agrees on them.
 */
import type { RoutingDescription, RoutingKind } from '../../shared/protocol';
import type { MoeArchitecture } from './families';

/**
 * Routing the com.microsoft.MoE operator cannot express (it applies a softmax to its router input and
 * takes the top-k of that): the graph computes the selection and the applied weights with standard ops
 * (graphRouting.ts) and hands the operator inputs that reproduce exactly those weights.
 */
export interface GraphRouter {
  kind: RoutingKind;
  score: 'softmax' | 'sigmoid';
  /** The layer has a router bias tensor (routerChoiceBias) added to the scores only to choose. */
  choiceBias: boolean;
  /**
   * Group-limited top-k: the experts in n groups, only the topk best groups may be chosen from. A group's
   * score is its best expert's ('max', DeepSeek-V2) or the sum of its best two ('top2-sum', DeepSeek-V3).
   * Experts outside the chosen groups get `maskedScore` (0 in DeepSeek-V2, -inf in DeepSeek-V3).
   */
  groups: { n: number; topk: number; score: 'max' | 'top2-sum'; maskedScore: number } | null;
  /**
   * Divide the chosen weights by their sum (+ eps, or at least min: ERNIE's moe_norm_min), or by their
   * p-norm (DBRX's moe_normalize_expert_weights).
   */
  renormalize: { p: number; eps: number; min?: number } | null;
  /** The choice bias is stored as [1, experts] (ERNIE's moe_statics) rather than [experts]. */
  choiceBiasAsRow?: boolean;
  /** Multiplies the applied weights (routed_scaling_factor). */
  routedScaling: number;
}

export interface MlaAttention {
  qLoraRank: number | null;
  kvLoraRank: number;
  nopeDim: number;
  ropeDim: number;
  valueDim: number;
  /** Scale of the attention scores (qk_head_dim^-0.5, times yarn's mscale^2 where it applies). */
  scale: number;
}

/** Decoder-layer index of each routing row. */
export function moeLayersOf(arch: Pick<MoeArchitecture, 'numLayers' | 'moeLayers'>): number[] {
  return arch.moeLayers ?? Array.from({ length: arch.numLayers }, (_, i) => i);
}

/** Width of the rotary tables the graph takes as input (rope_cos / rope_sin). */
export function ropeDim(arch: Pick<MoeArchitecture, 'headDim' | 'rotaryDim' | 'mla'>): number {
  return arch.mla ? arch.mla.ropeDim : (arch.rotaryDim ?? arch.headDim);
}

/** Shape of one layer's cached keys and values: [batch, heads, positions, keyDim | valueDim]. */
export function kvCacheDims(arch: Pick<MoeArchitecture, 'numKvHeads' | 'numHeads' | 'headDim' | 'mla'>): { heads: number; keyDim: number; valueDim: number } {
  if (arch.mla) return { heads: arch.numHeads, keyDim: arch.mla.nopeDim + arch.mla.ropeDim, valueDim: arch.mla.valueDim };
  return { heads: arch.numKvHeads, keyDim: arch.headDim, valueDim: arch.headDim };
}

/**
 * ModelInfo.normTopKProb: whether the k chosen weights are rescaled to sum to 1, by the MoE operator or by a
 * router computed in the graph (DeepSeek-V3's norm_topk_prob, ERNIE) — as the PyTorch engine reports it.
 */
/** ModelInfo.sharedExperts: the shared experts per MoE layer (DeepSeek's n_shared_experts are fused into one MLP). */
export function sharedExpertCount(arch: Pick<MoeArchitecture, 'sharedExpert'>): number {
  return arch.sharedExpert ? (arch.sharedExpert.count ?? 1) : 0;
}

export function rescalesToOne(arch: Pick<MoeArchitecture, 'router' | 'normTopKProb'>): boolean {
  return arch.router ? arch.router.renormalize?.p === 1 : arch.normTopKProb;
}

/** What the routing of this architecture is, for ModelInfo (shown beside the routing). */
export function routingDescription(arch: Pick<MoeArchitecture, 'router' | 'normTopKProb'>): RoutingDescription {
  const r = arch.router;
  if (!r) {
    return arch.normTopKProb
      ? {
          kind: 'softmax-topk-renorm',
          scoreFunction: 'softmax',
          routedScalingFactor: 1,
          zeroExperts: 0,
          appliedWeight: 'softmax probability, renormalised over the top-k',
        }
      : { kind: 'softmax-topk', scoreFunction: 'softmax', routedScalingFactor: 1, zeroExperts: 0, appliedWeight: 'softmax probability over all experts' };
  }
  const parts = [r.score === 'sigmoid' ? 'sigmoid score' : 'softmax probability'];
  if (r.choiceBias) parts.push('chosen with a correction bias that does not enter the weight');
  if (r.groups) parts.push(`from the best ${r.groups.topk} of ${r.groups.n} expert groups`);
  if (r.renormalize) parts.push(r.renormalize.p === 1 ? 'renormalised over the top-k' : `divided by the top-k ${r.renormalize.p}-norm`);
  if (r.routedScaling !== 1) parts.push(`times ${r.routedScaling}`);
  return { kind: r.kind, scoreFunction: r.score, routedScalingFactor: r.routedScaling, zeroExperts: 0, appliedWeight: parts.join(', ') };
}
