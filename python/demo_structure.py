"""
Measures routing structure of OLMoE-shaped checkpoints on held-out text (the first questions of every MMLU
test subject, as MoE Scope prompts them), with transformers' own forward (output_router_logits):

- gate entropy per layer: mean over tokens of the entropy of the router's softmax over all experts (nats);
- never-activated experts per layer: experts in no token's top-k, over all tokens and over the scored
  "Answer:" positions only (the evaluation's default token scope);
- token-kind specialisation per layer: mutual information between a token's kind (word start, word
  piece, digit, punctuation, line break; from its byte-level BPE text) and its top-1 expert, divided by the
  entropy of the kinds (0: the expert says nothing about the kind; 1: it determines it).

    python python/demo_structure.py --mmlu MMLU --model NAME=DIR [--model NAME=DIR ...] [--per-subject N]

Prints one JSON object: {NAME: {entropy: [...], neverActivated: [...], kindInformation: [...], means}}.
"""
import argparse
import csv
import json
import math
import os
import sys

KINDS = ("word-start", "word-piece", "digit", "punctuation", "line-break")


def token_kind(text):
    if "Ċ" in text or "\n" in text:
        return "line-break"
    body = text.lstrip("Ġ ")
    if any(c.isdigit() for c in body):
        return "digit"
    if not any(c.isalpha() for c in body):
        return "punctuation"
    return "word-start" if text.startswith(("Ġ", " ")) else "word-piece"


def held_out_prompts(mmlu_dir, per_subject):
    folder = os.path.join(mmlu_dir, "data", "test")
    if not os.path.isdir(folder):
        sys.exit(f"demo_structure: {folder} does not exist (pass --mmlu with the unpacked MMLU folder)")
    prompts = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith("_test.csv"):
            continue
        subject = name[: -len("_test.csv")].replace("_", " ")
        with open(os.path.join(folder, name), newline="", encoding="utf-8") as f:
            for n, fields in enumerate(csv.reader(f)):
                if n >= per_subject:
                    break
                q, a, b, c, d = fields[:5]
                prompts.append(
                    f"The following are multiple choice questions (with answers) about {subject}.\n\n{q.strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
                )
    return prompts


def entropy_of_counts(counts):
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c > 0) if total else 0.0


def measure(model_dir, prompts):
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    layers, experts, k = model.config.num_hidden_layers, model.config.num_experts, model.config.num_experts_per_tok
    entropy_sum = [0.0] * layers
    used = [set() for _ in range(layers)]
    used_at_answer = [set() for _ in range(layers)]
    joint = [[[0] * experts for _ in KINDS] for _ in range(layers)]
    tokens = 0
    with torch.no_grad():
        for prompt in prompts:
            enc = tokenizer.encode(prompt)
            kinds = [KINDS.index(token_kind(t)) for t in enc.tokens]
            out = model(torch.tensor([enc.ids]), output_router_logits=True, use_cache=False)
            for l, logits in enumerate(out.router_logits):
                probs = torch.softmax(logits.float().view(len(enc.ids), experts), dim=-1)
                entropy_sum[l] += float(-(probs * torch.log(probs.clamp_min(1e-30))).sum())
                top = torch.topk(probs, k, dim=-1).indices
                used[l].update(top.flatten().tolist())
                used_at_answer[l].update(top[-1].tolist())
                for kind, first in zip(kinds, top[:, 0].tolist()):
                    joint[l][kind][first] += 1
            tokens += len(enc.ids)
    kind_totals = [sum(joint[0][i]) for i in range(len(KINDS))]
    kind_entropy = entropy_of_counts(kind_totals)
    information = []
    for l in range(layers):
        expert_totals = [sum(joint[l][i][e] for i in range(len(KINDS))) for e in range(experts)]
        mi = entropy_of_counts(kind_totals) + entropy_of_counts(expert_totals) - entropy_of_counts([c for row in joint[l] for c in row])
        information.append(mi / kind_entropy if kind_entropy > 0 else 0.0)
    entropy = [s / tokens for s in entropy_sum]
    never = [experts - len(u) for u in used]
    never_at_answer = [experts - len(u) for u in used_at_answer]
    return {
        "tokens": tokens,
        "experts": experts,
        "topK": k,
        "kindCounts": dict(zip(KINDS, kind_totals)),
        "entropy": [round(x, 4) for x in entropy],
        "neverActivated": never,
        "kindInformation": [round(x, 4) for x in information],
        "prompts": len(prompts),
        "neverActivatedAtAnswer": never_at_answer,
        "totalNeverActivatedAtAnswer": sum(never_at_answer),
        "meanEntropy": round(sum(entropy) / layers, 4),
        "maxEntropy": round(math.log(experts), 4),
        "totalNeverActivated": sum(never),
        "meanKindInformation": round(sum(information) / layers, 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("--mmlu", required=True)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR")
    ap.add_argument("--per-subject", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    prompts = held_out_prompts(args.mmlu, args.per_subject)
    result = {}
    for spec in args.model:
        name, sep, model_dir = spec.partition("=")
        if not sep:
            sys.exit(f"demo_structure: --model {spec!r}: expected NAME=DIR")
        result[name] = measure(model_dir, prompts)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
