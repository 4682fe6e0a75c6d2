"""
Tiny random checkpoints of MoE families written by transformers itself (AutoConfig.for_model +
AutoModelForCausalLM.from_config + save_pretrained), with the routing each layer's experts module
actually received in transformers' own fp32 forward as the reference.

    python test/support/hf_families.py --out DIR --vocab V --ids '[1,2,3]' --tokenizer-dir TOK [--only a,b]

For every variant, DIR/<name>/ holds the checkpoint, the tokenizer files copied from TOK and
reference.json: the last-position logits, and per MoE decoder layer (moeLayers) the (top_k_index,
top_k_weights) a forward pre-hook on that layer's experts module saw: the selection and the weights the
experts applied, whatever rule produced them. Routing-bias buffers (e_score_correction_bias) are drawn
non-zero so that a rule ignoring them would choose other experts. DIR/variants.json lists the variants.
"""
import argparse
import json
import math
import os
import re
import shutil
import sys

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

BASE = dict(hidden_size=64, num_hidden_layers=3, max_position_embeddings=512, tie_word_embeddings=False, rms_norm_eps=1e-6)

DEEPSEEK_MLA = dict(num_attention_heads=4, num_key_value_heads=4, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=12)


def variants():
    """name -> (model_type, config kwargs). Dense first layers wherever the family has them."""
    return {
        # The original four (qwen2_moe / qwen3_moe below, with dense layers) under the same experts-input reference.
        "olmoe": ("olmoe", dict(num_attention_heads=4, num_key_value_heads=4, intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                  norm_topk_prob=False, clip_qkv=4.0)),
        "mixtral": ("mixtral", dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=32, num_local_experts=8, num_experts_per_tok=2)),
        # DeepSeek-V3: MLA with q LoRA, interleaved rotary, sigmoid + correction bias, group-limited top-k,
        # renormalised x 2.5, one shared expert, first layer dense.
        "deepseek_v3": ("deepseek_v3", dict(DEEPSEEK_MLA, q_lora_rank=24, intermediate_size=96, moe_intermediate_size=32, n_routed_experts=16,
                        num_experts_per_tok=4, n_group=4, topk_group=2, first_k_dense_replace=1, n_shared_experts=1, routed_scaling_factor=2.5,
                        norm_topk_prob=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
        # DeepSeek-V2: MLA without q LoRA, softmax, group-limited greedy (max per group), x 1.5, not renormalised.
        "deepseek_v2": ("deepseek_v2", dict(DEEPSEEK_MLA, q_lora_rank=None, intermediate_size=96, moe_intermediate_size=32, n_routed_experts=8,
                        num_experts_per_tok=3, n_group=4, topk_group=2, topk_method="group_limited_greedy", first_k_dense_replace=1,
                        n_shared_experts=2, routed_scaling_factor=1.5)),
        # DeepSeek-V2 with q LoRA and plain greedy top-k.
        "deepseek_v2-greedy": ("deepseek_v2", dict(DEEPSEEK_MLA, q_lora_rank=20, intermediate_size=96, moe_intermediate_size=32, n_routed_experts=8,
                               num_experts_per_tok=2, topk_method="greedy", first_k_dense_replace=0, n_shared_experts=1, routed_scaling_factor=1.0)),
        # GLM-4.5: partial rotary (0.5), q/k/v biases, per-head QK-norm, sigmoid routing, GQA.
        "glm4_moe": ("glm4_moe", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=96, moe_intermediate_size=32,
                     n_routed_experts=8, num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1, n_shared_experts=1,
                     routed_scaling_factor=1.5, norm_topk_prob=True, attention_bias=True, use_qk_norm=True)),
        # dots.llm1: per-head QK-norm, sigmoid routing without renormalisation, two dense layers.
        "dots1": ("dots1", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=96, moe_intermediate_size=32,
                  n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2, first_k_dense_replace=1, n_shared_experts=1,
                  routed_scaling_factor=2.0, norm_topk_prob=False, num_hidden_layers=4)),
        # ERNIE 4.5: softmax weights, a [1, experts] bias only to choose, renormalised, interleaved rotary, first layer dense.
        "ernie4_5_moe": ("ernie4_5_moe", dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=96, moe_intermediate_size=32,
                         moe_num_experts=8, moe_k=2, moe_num_shared_experts=1, moe_layer_start_index=1, pad_token_id=None)),
        # Qwen2-MoE with a dense layer (mlp_only_layers) between MoE layers.
        "qwen2_moe-dense": ("qwen2_moe", dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=96, moe_intermediate_size=32,
                            shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, mlp_only_layers=[1])),
        # Qwen3-MoE with decoder_sparse_step 2: only layers 1 and 3 are MoE.
        "qwen3_moe-dense": ("qwen3_moe", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=96, moe_intermediate_size=32,
                            num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=2, num_hidden_layers=4)),
        # FlexOlmo: post-norm layers, full-width QK-norm, raw softmax top-k.
        "flex_olmo": ("flex_olmo", dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                      norm_topk_prob=False, pad_token_id=None)),
        # Granite MoE: embedding, residual, attention and logits multipliers other than 1.
        "granitemoe": ("granitemoe", dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=32, num_local_experts=8, num_experts_per_tok=2,
                       embedding_multiplier=2.0, residual_multiplier=0.5, attention_multiplier=0.2, logits_scaling=4.0)),
        # Granite MoE with a shared MLP.
        "granitemoeshared": ("granitemoeshared", dict(num_attention_heads=4, num_key_value_heads=2, intermediate_size=32, num_local_experts=8,
                             num_experts_per_tok=3, shared_intermediate_size=48, embedding_multiplier=1.5, residual_multiplier=0.7,
                             attention_multiplier=0.25, logits_scaling=2.0)),
        # DBRX: LayerNorm, fused Wqkv with clip_qkv, p-norm (p = 2) renormalisation, stacked w1/v1/w2 experts.
        "dbrx": ("dbrx", dict(d_model=64, n_heads=4, n_layers=2, max_seq_len=512, hidden_size=None, num_hidden_layers=None,
                 max_position_embeddings=None, rms_norm_eps=None,
                 attn_config=dict(kv_n_heads=2, rope_theta=10000.0, clip_qkv=4.0),
                 ffn_config=dict(ffn_hidden_size=32, moe_num_experts=8, moe_top_k=2, moe_normalize_expert_weights=2.0))),
        # HunYuan: QK-norm after the rotary embedding, renormalised softmax top-k, shared MLP.
        "hunyuan_v1_moe": ("hunyuan_v1_moe", dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=32, num_experts=8,
                           moe_topk=2)),
    }


# Variants also traced with one expert masked (the first MoE layer's most chosen expert).
MASKED = ("deepseek_v3", "ernie4_5_moe")


def redraw(model, gen):
    """Fan-in scaled weights (transformers' 0.02 initialisation makes routers almost uniform), non-zero routing biases."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                is_norm = "norm" in name.split(".")[-2]
                p.copy_((1.0 if is_norm else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                scale = 1.0 / math.sqrt(p.shape[-1])
                if re.search(r"\.(gate|router|router\.layer|gate\.wg)\.weight$", name):
                    scale *= 2.0
                p.copy_(scale * torch.randn(p.shape, generator=gen))
        for name, b in list(model.named_buffers()) + list(model.named_parameters()):
            if name.endswith("e_score_correction_bias") or name.endswith("expert_bias"):
                b.copy_(0.3 * torch.randn(b.shape, generator=gen))


def experts_modules(model):
    """(decoder layer, module) for every layer's experts module, the callee of experts(hidden, top_k_index, top_k_weights)."""
    found = []
    for name, module in model.named_modules():
        m = re.match(r"^(?:model\.layers|transformer\.blocks)\.(\d+)\.[A-Za-z_]+\.experts$", name)
        if m and type(module).__name__.endswith("Experts"):
            found.append((int(m.group(1)), module))
    return sorted(found, key=lambda x: x[0])


def main():
    if int(transformers.__version__.split(".")[0]) < 5:
        sys.exit(f"hf_families.py needs transformers >= 5 (experts modules called with top_k_index, top_k_weights); found {transformers.__version__}")
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    ids = json.loads(args.ids)
    chosen = [v for v in args.only.split(",") if v]
    names = []
    for i, (name, (model_type, kwargs)) in enumerate(variants().items()):
        if chosen and name not in chosen:
            continue
        torch.manual_seed(i + 1)
        gen = torch.Generator().manual_seed(i + 1)
        # A None in the variant removes a BASE key the family spells otherwise (DBRX: d_model, n_layers, ...).
        merged = {k: v for k, v in dict(BASE, vocab_size=args.vocab).items() if not (k in kwargs and kwargs[k] is None)}
        merged.update({k: v for k, v in kwargs.items() if not (k in BASE and v is None)})
        config = AutoConfig.for_model(model_type, **merged)
        model = AutoModelForCausalLM.from_config(config).eval()
        redraw(model, gen)
        out_dir = os.path.join(args.out, name)
        model.save_pretrained(out_dir)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            src = os.path.join(args.tokenizer_dir, f)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(out_dir, f))
        model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
        seen = {}

        def hook(layer):
            def pre(module, a, kw):
                index = a[1] if len(a) > 1 else kw["top_k_index"]
                weights = a[2] if len(a) > 2 else kw["top_k_weights"]
                seen[layer] = (index.reshape(len(ids), -1).tolist(), weights.float().reshape(len(ids), -1).tolist())
            return pre

        modules = experts_modules(model)
        if not modules:
            sys.exit(f"{name}: no experts module found to observe")
        for layer, module in modules:
            module.register_forward_pre_hook(hook(layer), with_kwargs=True)
        with torch.no_grad():
            res = model(torch.tensor([ids]), use_cache=False)
        layers = [layer for layer, _ in modules]
        ref = {
            "name": name,
            "modelType": model_type,
            "transformers": transformers.__version__,
            "numDecoderLayers": getattr(config, "n_layers", None) or config.num_hidden_layers,
            "moeLayers": layers,
            "lastLogits": res.logits[0, -1].tolist(),
            "topIndex": [seen[layer][0] for layer in layers],
            "topWeights": [seen[layer][1] for layer in layers],
        }
        if name in MASKED:
            # Masking an expert where the family chooses: its correction bias at -inf in transformers is exactly
            # "never chosen, the others' weights unchanged", the semantics of MoE Scope's expert mask.
            row, layer = 0, layers[0]
            counts = torch.bincount(torch.tensor(seen[layer][0]).flatten(), minlength=1)
            expert = int(counts.argmax())
            tensors = list(model.named_buffers()) + list(model.named_parameters())
            (bias,) = [b for n, b in tensors if n.startswith(f"model.layers.{layer}.") and n.endswith("e_score_correction_bias")]
            with torch.no_grad():
                bias.view(-1)[expert] = float("-inf")
                masked = model(torch.tensor([ids]), use_cache=False)
            ref["masked"] = {
                "row": row,
                "expert": expert,
                "lastLogits": masked.logits[0, -1].tolist(),
                "topIndex": [seen[layer][0] for layer in layers],
                "topWeights": [seen[layer][1] for layer in layers],
            }
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump(ref, f)
        names.append(name)
    with open(os.path.join(args.out, "variants.json"), "w") as f:
        json.dump(names, f)


if __name__ == "__main__":
    main()
