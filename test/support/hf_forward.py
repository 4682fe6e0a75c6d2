"""
transformers' fp32 forward of an existing checkpoint, in the reference.json layout of hf_reference.py:
last-position logits, per-layer router softmax probabilities and top-k experts.

    python test/support/hf_forward.py --model DIR --ids '[1,2,3]' --out FILE
"""
import argparse
import json

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="JSON list of token ids to run")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    ids = json.loads(args.ids)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    with torch.no_grad():
        res = model(torch.tensor([ids]), output_router_logits=True, use_cache=False)
    k = model.config.num_experts_per_tok
    probs = [torch.softmax(r.float(), dim=-1) for r in res.router_logits]
    with open(args.out, "w") as f:
        json.dump(
            {
                "name": args.model,
                "transformers": transformers.__version__,
                "lastLogits": res.logits[0, -1].tolist(),
                "routerProbs": [p.tolist() for p in probs],
                "topExperts": [torch.topk(p, k, dim=-1).indices.tolist() for p in probs],
            },
            f,
        )


if __name__ == "__main__":
    main()
