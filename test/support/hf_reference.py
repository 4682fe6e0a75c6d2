"""
Tiny random MoE checkpoints written by Hugging Face transformers itself (its own model classes and
save_pretrained), with transformers' own forward pass as the reference the ONNX engine is checked against.

    python test/support/hf_reference.py --out DIR --vocab V --ids '[1,2,3]' --tokenizer-dir TOK

For every variant, DIR/<name>/ holds the checkpoint (config.json as transformers 5 writes it, safetensors,
the tokenizer files copied from TOK) and reference.json: the fp32 forward of the ids with
output_router_logits: last-position logits, per-layer router softmax probabilities and top-k experts
(torch.topk of those probabilities, as the routers themselves do). DIR/variants.json lists the variants.

Weights are re-drawn after construction with a fan-in scale (transformers' 0.02 initialisation makes every
router almost uniform, so top-k sets would rest on differences of 1e-6 and compare nothing).
"""
import argparse
import json
import math
import os
import shutil
import sys

import torch
import transformers

COMMON = dict(hidden_size=32, num_hidden_layers=3, max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=False)


def variants(vocab):
    """name -> (config class, model class, config kwargs, storage dtype, max shard size or None)."""
    base = dict(COMMON, vocab_size=vocab)
    return {
        # OLMoE: MHA, full-projection QK-norm, raw softmax weights; theta other than 10000.
        "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=4, intermediate_size=16,
                  num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, rope_parameters={"rope_type": "default", "rope_theta": 50000.0}), torch.float32, None),
        # The same in bf16, sharded over several files with an index.
        "olmoe-bf16-sharded": ("OlmoeConfig", "OlmoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=4, intermediate_size=16,
                               num_experts=8, num_experts_per_tok=2, norm_topk_prob=False), torch.bfloat16, "40KB"),
        # Mixtral: grouped-query attention; transformers writes rope_parameters with theta 1e6 (its default).
        "mixtral-gqa": ("MixtralConfig", "MixtralForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=2, intermediate_size=24,
                        num_local_experts=4, num_experts_per_tok=2), torch.float32, None),
        # Mixtral with a sliding window shorter than the traced sequence.
        "mixtral-sliding": ("MixtralConfig", "MixtralForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=1, intermediate_size=24,
                            num_local_experts=4, num_experts_per_tok=2, sliding_window=7, rope_parameters={"rope_type": "default", "rope_theta": 20000.0}), torch.float32, None),
        # Qwen2-MoE: shared expert with a sigmoid gate, q/k/v biases, GQA.
        "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=2, intermediate_size=48,
                      moe_intermediate_size=16, shared_expert_intermediate_size=24, num_experts=8, num_experts_per_tok=3, norm_topk_prob=False,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), torch.float32, None),
        # Qwen3-MoE: per-head QK-norm, renormalised top-k, GQA, head_dim not hidden/heads.
        "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=48,
                      moe_intermediate_size=16, num_experts=16, num_experts_per_tok=4, norm_topk_prob=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}), torch.float32, None),
        # Qwen3-MoE with YaRN context extension (as Qwen3 long-context configs set it), the traced
        # sequence longer than original_max_position_embeddings.
        "qwen3_moe-yarn": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=48,
                           moe_intermediate_size=16, num_experts=16, num_experts_per_tok=4, norm_topk_prob=True,
                           rope_parameters={"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 4.0, "original_max_position_embeddings": 32}), torch.float32, None),
        # Qwen3-MoE with use_sliding_window (one window in every layer), shorter than the traced sequence.
        "qwen3_moe-sliding": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=48,
                              moe_intermediate_size=16, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, use_sliding_window=True, sliding_window=9), torch.float32, None),
        # OLMoE with linear RoPE scaling, config.json rewritten in the legacy spelling (top-level rope_theta
        # and rope_scaling) before transformers reads it back.
        "olmoe-linear-legacy": ("OlmoeConfig", "OlmoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=4, intermediate_size=16,
                                num_experts=8, num_experts_per_tok=2, rope_parameters={"rope_type": "linear", "rope_theta": 20000.0, "factor": 3.0}), torch.float32, None),
        # Qwen3-MoE in bf16, sharded.
        "qwen3_moe-bf16-sharded": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(base, num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=48,
                                   moe_intermediate_size=16, num_experts=16, num_experts_per_tok=4, norm_topk_prob=False), torch.bfloat16, "40KB"),
    }


def redraw(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                # Norm weights around 1, biases around 0.
                p.copy_((1.0 if name.endswith("norm.weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                scale = 1.0 / math.sqrt(p.shape[-1])
                if name.endswith("mlp.gate.weight") or name.endswith("block_sparse_moe.gate.weight"):
                    scale *= 2.0  # a router sharper than initialisation, as the demo checkpoints have
                p.copy_(scale * torch.randn(p.shape, generator=gen))


def to_legacy_rope(config_file):
    """rope_parameters -> top-level rope_theta plus rope_scaling {"type": ...}, as transformers 4 wrote it."""
    with open(config_file) as f:
        config = json.load(f)
    params = config.pop("rope_parameters")
    config["rope_theta"] = params.pop("rope_theta")
    params["type"] = params.pop("rope_type")
    config["rope_scaling"] = params
    with open(config_file, "w") as f:
        json.dump(config, f, indent=2)


def main():
    if int(transformers.__version__.split(".")[0]) < 5:
        sys.exit(f"hf_reference.py needs transformers >= 5 (it writes rope_parameters and reads num_local_experts aliases); found {transformers.__version__}")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--ids", required=True, help="JSON list of token ids to run")
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = ap.parse_args()
    ids = json.loads(args.ids)
    torch.manual_seed(0)
    chosen = [v for v in args.only.split(",") if v]
    names = []
    for name, (cfg_cls, model_cls, kwargs, dtype, shard) in variants(args.vocab).items():
        if chosen and name not in chosen:
            continue
        gen = torch.Generator().manual_seed(len(names) + 1)
        config = getattr(transformers, cfg_cls)(**kwargs)
        model = getattr(transformers, model_cls)(config).eval()
        redraw(model, gen)
        model = model.to(dtype)
        out_dir = os.path.join(args.out, name)
        model.save_pretrained(out_dir, **({"max_shard_size": shard} if shard else {}))
        if name.endswith("-legacy"):
            to_legacy_rope(os.path.join(out_dir, "config.json"))
        for f in ("tokenizer.json", "tokenizer_config.json"):
            src = os.path.join(args.tokenizer_dir, f)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(out_dir, f))
        # The reference is what transformers makes of the saved folder, loaded in fp32 (casting the
        # in-memory model back would keep its rotary frequencies rounded to the storage dtype).
        model = getattr(transformers, model_cls).from_pretrained(out_dir, dtype=torch.float32).eval()
        with torch.no_grad():
            res = model(torch.tensor([ids]), output_router_logits=True, use_cache=False)
        k = config.num_experts_per_tok
        probs = [torch.softmax(r.float(), dim=-1) for r in res.router_logits]
        ref = {
            "name": name,
            "transformers": transformers.__version__,
            "lastLogits": res.logits[0, -1].tolist(),
            "routerProbs": [p.tolist() for p in probs],
            "topExperts": [torch.topk(p, k, dim=-1).indices.tolist() for p in probs],
        }
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump(ref, f)
        names.append(name)
    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump(names, f)


if __name__ == "__main__":
    main()
