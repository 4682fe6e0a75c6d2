"""Reference MAN / MSAN from transformers' own expert modules (for test/integration/expert-norms.test.ts).

Loads a checkpoint transformers wrote (hf_reference.py) in fp32, runs each prompt with a forward pre-hook on
every layer's `mlp.experts` module that records the MoE input and the router's top-k choice, then calls that
same experts module once per (token, slot) with only that expert and weight 1: its output is the expert's
output before the gate weight. Prints per layer and expert the assignment count and the sum of the L2 norms
and of their squares, over every token of every prompt.
"""
import argparse
import json
import sys

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--class", dest="cls", required=True)
    ap.add_argument("--prompts", required=True, help="JSON list of token-id lists")
    args = ap.parse_args()
    prompts = json.loads(args.prompts)
    model = getattr(transformers, args.cls).from_pretrained(args.model, dtype=torch.float32).eval()
    cfg = model.config
    E = getattr(cfg, "num_experts", None) or cfg.num_local_experts
    layers = model.model.layers
    L = len(layers)
    count = [[0] * E for _ in range(L)]
    norm_sum = [[0.0] * E for _ in range(L)]
    norm_sq = [[0.0] * E for _ in range(L)]
    captured = {}

    def hook(layer):
        def pre(module, args_, kwargs):
            hidden = kwargs.get("hidden_states", args_[0] if args_ else None)
            index = kwargs.get("top_k_index", args_[1] if len(args_) > 1 else None)
            if hidden is None or index is None:
                sys.exit(f"layer {layer}: the experts module was not called as (hidden_states, top_k_index, top_k_weights)")
            captured[layer] = (hidden.detach().clone(), index.detach().clone())

        return pre

    for i, layer in enumerate(layers):
        experts = getattr(layer.mlp, "experts", None)
        if experts is None:
            sys.exit(f"layer {i} has no mlp.experts module")
        experts.register_forward_pre_hook(hook(i), with_kwargs=True)

    with torch.no_grad():
        for ids in prompts:
            captured.clear()
            model(torch.tensor([ids]), use_cache=False)
            for l in range(L):
                hidden, index = captured[l]
                experts = layers[l].mlp.experts
                for t in range(hidden.shape[0]):
                    for s in range(index.shape[1]):
                        e = int(index[t, s])
                        one = torch.ones(1, 1, dtype=hidden.dtype)
                        out = experts(hidden[t : t + 1], index[t : t + 1, s : s + 1], one)
                        n = float(torch.linalg.vector_norm(out.double()))
                        count[l][e] += 1
                        norm_sum[l][e] += n
                        norm_sq[l][e] += n * n
    json.dump({"transformers": transformers.__version__, "count": count, "normSum": norm_sum, "normSqSum": norm_sq}, sys.stdout)


if __name__ == "__main__":
    main()
