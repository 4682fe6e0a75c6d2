/**
 * How the UI and the CLI name MoE Scope's demo checkpoints. There are two: the random one that
 * `make-demo-model` writes (tests, and the demo when training is not possible) and the toy the demo trains
 * on MMLU dev/val text (scripts/make-trained-demo-model.sh). Neither is OLMoE; the words say which.
 */

/** config.json field that marks the trained toy (written by python/train_demo_model.py). */
export const TRAINED_DEMO_CONFIG_FIELD = 'moe_scope_demo_trained';

export function demoModelLabel(trained: boolean | undefined): string {
  return trained ? 'demo model: a toy trained on MMLU dev/val text (OLMoE layout, tiny widths), not OLMoE' : 'demo model: random weights';
}

/** What the model's numbers of a run or a comparison mean, after the label. */
export function demoResultsCaveat(trained: boolean | undefined, what: 'run' | 'comparison'): string {
  if (trained) {
    return what === 'run'
      ? 'Its accuracy is near chance; its routing shows what a small router learnt from that text, not what OLMoE does.'
      : 'These differences show a small toy, not a real MoE model.';
  }
  return what === 'run'
    ? 'Accuracy and routing statistics of this run say nothing about a trained model.'
    : 'These differences say nothing about a trained model.';
}

/** Whether ModelInfo.demo (or a value read from a file) marks the trained toy. */
export function isTrainedDemo(demo: unknown): boolean {
  return typeof demo === 'object' && demo !== null && (demo as { trained?: unknown }).trained === true;
}
