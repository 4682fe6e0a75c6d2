/**
 * What the analyses consume: the routing of one evaluated question, with the positions that define the
 * token scopes. Flattened like protocol.Routing: [layer][token][slot] -> (layer * numTokens + token) * topK + slot.
 */
export interface RoutingRecord {
  questionId: string;
  subject: string;
  /** Whether the model's predicted letter equals the gold letter. */
  correct: boolean;
  numLayers: number;
  numExperts: number;
  topK: number;
  numTokens: number;
  topExperts: ArrayLike<number>;
  topWeights: ArrayLike<number>;
  /** Gate entropy in nats, [layer][token]. */
  entropy: ArrayLike<number>;
  /** [start, end) token indices of the target question's own text (question and choices). */
  questionTokens: [number, number];
  /** Token index of the answer position (the last prompt token, whose next-token logits are scored). */
  answerToken: number;
  /** Optional: each chosen expert's unweighted output L2 norm, [layer][token][slot] like topExperts (MAN/MSAN). */
  expertOutputNorms?: ArrayLike<number>;
}
