/**
 * Routing computed in the decoder graph for the families whose rule the com.microsoft.MoE operator
 * cannot express (familyFeatures.GraphRouter): sigmoid or softmax scores, a bias added only to choose,
 * group-limited top-k, renormalisation and routed scaling, in float32 as the reference routers compute.
 *
 * The chosen experts and their applied weights are graph outputs (topk_index_L, topk_weight_L): the
 * engine reports them as they are, never re-derived. The experts then receive exactly these weights: the
 * operator (or the standard-ops formulations, which share its interface) gets a router input that is
 * log(weight) at the chosen experts and -1e30 elsewhere, with renormalisation on, so that its
 * softmax-top-k-renormalise yields weight / sum(weights) on the same experts; the block's output is then
 * multiplied by sum(weights) per token. That is the weighted sum of the chosen experts' outputs with
 * the family's own weights, whatever their sum.
 */
import type { OnnxGraphBuilder } from './formats/onnxWriter';
import type { GraphRouter } from './familyFeatures';

export interface GraphRoutingInput {
  /** Router logits [tokens, experts], float32. */
  logits: string;
  numExperts: number;
  topK: number;
  router: GraphRouter;
  /** The layer's choice bias [experts] as float32, when router.choiceBias. */
  choiceBias?: string;
  /** An intervention's row [experts] (float32, -inf masks): added where the family chooses. */
  interventionBias?: string;
}

export interface GraphRoutingOutput {
  /** [tokens, k] int64: the chosen experts. */
  indices: string;
  /** [tokens, k] float32: the weights their outputs are multiplied by. */
  weights: string;
  /** [tokens, experts] float32 for the MoE operator (see above). */
  operatorInput: string;
  /** [tokens, 1] float32: the sum of the weights, to multiply the operator's output by. */
  weightSum: string;
}

export function buildGraphRouting(g: OnnxGraphBuilder, m: GraphRoutingInput): GraphRoutingOutput {
  const r = m.router;
  const E = m.numExperts;
  const scores = r.score === 'sigmoid' ? g.op('Sigmoid', [m.logits]) : g.op('Softmax', [m.logits], { axis: -1 });
  let choice = scores;
  if (m.choiceBias) choice = g.op('Add', [choice, m.choiceBias]);
  if (m.interventionBias) choice = g.op('Add', [choice, m.interventionBias]);
  if (r.groups) {
    const { n, topk } = r.groups;
    const per = E / n;
    const grouped = g.op('Reshape', [choice, g.constInt64([-1, n, per])]);
    const groupScores =
      r.groups.score === 'max'
        ? g.op('ReduceMax', [grouped], { axes: [-1], keepdims: 0 })
        : g.op('ReduceSum', [g.opN('TopK', [grouped, g.constInt64([2])], 2, { axis: -1, largest: 1, sorted: 1 })[0], g.constInt64([-1])], { keepdims: 0 });
    const [, groupIdx] = g.opN('TopK', [groupScores, g.constInt64([topk])], 2, { axis: -1, largest: 1, sorted: 1 });
    const zeros = g.op('Expand', [g.constFloat([0], []), g.op('Shape', [groupScores])]);
    const ones = g.op('Expand', [g.constFloat([1], []), g.op('Shape', [groupIdx])]);
    const groupMask = g.op('ScatterElements', [zeros, groupIdx, ones], { axis: 1 }); // [T, n]
    const expertMask = g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [groupMask, g.constInt64([2])]), g.constInt64([1, 1, per])]), g.constInt64([-1, E])]);
    choice = g.op('Where', [g.op('Cast', [expertMask], { to: 9 }), choice, g.constFloat([r.groups.maskedScore], [])]);
  }
  const [, indices] = g.opN('TopK', [choice, g.constInt64([m.topK])], 2, { axis: -1, largest: 1, sorted: 1 });
  let weights = g.op('GatherElements', [scores, indices], { axis: 1 });
  if (r.renormalize) {
    const { p, eps } = r.renormalize;
    const norm =
      p === 1
        ? g.op('ReduceSum', [weights, g.constInt64([-1])], { keepdims: 1 })
        : g.op('Pow', [
            g.op('ReduceSum', [g.op('Pow', [g.op('Abs', [weights]), g.constFloat([p], [])]), g.constInt64([-1])], { keepdims: 1 }),
            g.constFloat([1 / p], []),
          ]);
    let denominator = eps > 0 ? g.op('Add', [norm, g.constFloat([eps], [])]) : norm;
    if (r.renormalize.min !== undefined) denominator = g.op('Max', [denominator, g.constFloat([r.renormalize.min], [])]);
    weights = g.op('Div', [weights, denominator]);
  }
  if (r.routedScaling !== 1) weights = g.op('Mul', [weights, g.constFloat([r.routedScaling], [])]);
  const fill = g.op('Expand', [g.constFloat([-1e30], []), g.op('Shape', [m.logits])]);
  const operatorInput = g.op('ScatterElements', [fill, indices, g.op('Log', [weights])], { axis: 1 });
  const weightSum = g.op('ReduceSum', [weights, g.constInt64([-1])], { keepdims: 1 });
  return { indices, weights, operatorInput, weightSum };
}
