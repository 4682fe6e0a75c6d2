"""Tiny checkpoints of every MoE family transformers implements, written by transformers itself
(AutoConfig.for_model + from_config + save_pretrained) with random weights and non-zero routing-bias
buffers, for the parity tests. Config quirks per family: ../../../shared/notes/families.md."""
from __future__ import annotations

import json
import os

import torch

H, V, HEADS = 64, 300, 4
MLA = dict(num_key_value_heads=HEADS, kv_lora_rank=16, q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=16, head_dim=8)
COMMON = dict(hidden_size=H, vocab_size=V, num_attention_heads=HEADS, num_key_value_heads=2, intermediate_size=96,
              max_position_embeddings=256, tie_word_embeddings=False)

# model_type -> (config model_type, overrides). Each builds 2-4 decoder layers, 8-16 experts; several have dense
# or other-kind layers so that routing rows and decoder layers differ.
TINY: dict[str, tuple[str, dict]] = {
    "olmoe": ("olmoe", dict(num_hidden_layers=2, num_experts=8, num_experts_per_tok=2)),
    "flex_olmo": ("flex_olmo", dict(num_hidden_layers=2, num_experts=8, num_experts_per_tok=2, pad_token_id=None)),
    "mixtral": ("mixtral", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2)),
    "qwen2_moe": ("qwen2_moe", dict(num_hidden_layers=3, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                                    shared_expert_intermediate_size=48, mlp_only_layers=[0], norm_topk_prob=False)),
    "qwen3_moe": ("qwen3_moe", dict(num_hidden_layers=3, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                                    mlp_only_layers=[1], norm_topk_prob=True, head_dim=16)),
    "qwen3_next": ("qwen3_next", dict(num_hidden_layers=2, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                                      shared_expert_intermediate_size=32, head_dim=16, layer_types=["linear_attention", "full_attention"],
                                      linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4)),
    "qwen3_5_moe": ("qwen3_5_moe_text", dict(num_hidden_layers=2, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                                             shared_expert_intermediate_size=32, head_dim=16, layer_types=["linear_attention", "full_attention"],
                                             linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4)),
    "deepseek_v2": ("deepseek_v2", dict(num_hidden_layers=3, n_routed_experts=8, num_experts_per_tok=3, n_shared_experts=1, moe_intermediate_size=32,
                                        first_k_dense_replace=1, topk_method="group_limited_greedy", n_group=4, topk_group=2,
                                        routed_scaling_factor=1.5, **MLA)),
    "deepseek_v3": ("deepseek_v3", dict(num_hidden_layers=3, n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1, moe_intermediate_size=32,
                                        first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=2.5, **MLA)),
    "gpt_oss": ("gpt_oss", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2, head_dim=16,
                                layer_types=["sliding_attention", "full_attention"], sliding_window=8)),
    "granitemoe": ("granitemoe", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2)),
    "granitemoeshared": ("granitemoeshared", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2, shared_intermediate_size=48)),
    "granitemoehybrid": ("granitemoehybrid", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2, shared_intermediate_size=48,
                                                  layer_types=["mamba", "attention"], mamba_n_heads=4, mamba_d_head=32, mamba_n_groups=1,
                                                  mamba_d_state=16, mamba_chunk_size=16)),
    "jetmoe": ("jetmoe", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2, kv_channels=16, num_attention_heads=None)),
    "phimoe": ("phimoe", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2, router_jitter_noise=0.0)),
    "dbrx": ("dbrx", dict(d_model=H, n_heads=HEADS, n_layers=2, max_seq_len=256, vocab_size=V, tie_word_embeddings=False,
                          attn_config=dict(kv_n_heads=2, rope_theta=10000.0, clip_qkv=8.0),
                          ffn_config=dict(ffn_hidden_size=32, moe_num_experts=8, moe_top_k=2))),
    "llama4": ("llama4_text", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=1, head_dim=16, intermediate_size_mlp=96,
                                   interleave_moe_layer_step=2)),
    "glm4_moe": ("glm4_moe", dict(num_hidden_layers=3, n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1, moe_intermediate_size=32,
                                  first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=1.5, head_dim=16)),
    "ernie4_5_moe": ("ernie4_5_moe", dict(num_hidden_layers=3, moe_num_experts=8, moe_k=2, moe_num_shared_experts=1, moe_intermediate_size=32,
                                          moe_layer_start_index=1, moe_layer_end_index=2, head_dim=16)),
    "hunyuan_v1_moe": ("hunyuan_v1_moe", dict(num_hidden_layers=2, num_experts=8, moe_topk=2, head_dim=16)),
    "dots1": ("dots1", dict(num_hidden_layers=3, n_routed_experts=16, num_experts_per_tok=4, n_shared_experts=1, moe_intermediate_size=32,
                            first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=1.5, norm_topk_prob=True, head_dim=16)),
    "minimax": ("minimax", dict(num_hidden_layers=2, num_local_experts=8, num_experts_per_tok=2, head_dim=16,
                                layer_types=["linear_attention", "full_attention"])),
    "jamba": ("jamba", dict(num_hidden_layers=4, num_experts=8, num_experts_per_tok=2, expert_layer_period=2, expert_layer_offset=1,
                            attn_layer_period=2, attn_layer_offset=1, use_mamba_kernels=False, mamba_d_state=8, mamba_expand=2,
                            mamba_dt_rank=8)),
    "lfm2_moe": ("lfm2_moe", dict(num_hidden_layers=3, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, num_dense_layers=1,
                                  layer_types=["conv", "full_attention", "conv"], routed_scaling_factor=1.5)),
    "longcat_flash": ("longcat_flash", dict(num_layers=2, n_routed_experts=8, zero_expert_num=4, moe_topk=3, ffn_hidden_size=96,
                                            expert_ffn_hidden_size=32, routed_scaling_factor=2.0, **MLA)),
    "afmoe": ("afmoe", dict(num_hidden_layers=3, num_experts=8, num_experts_per_tok=2, num_shared_experts=1, moe_intermediate_size=32,
                            num_dense_layers=1, head_dim=16, route_scale=1.5, global_attn_every_n_layers=2, sliding_window=8)),
    "cohere2_moe": ("cohere2_moe", dict(num_hidden_layers=3, num_experts=8, num_experts_per_tok=2, head_dim=16,
                                        mlp_layer_types=["dense", "sparse", "sparse"], layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                                        sliding_window=8, prefix_dense_intermediate_size=96)),
    "exaone_moe": ("exaone_moe", dict(num_hidden_layers=3, num_experts=16, num_experts_per_tok=4, num_shared_experts=1, moe_intermediate_size=32,
                                      first_k_dense_replace=1, mlp_layer_types=["dense", "sparse", "sparse"],
                                      layer_types=["sliding_attention", "full_attention", "sliding_attention"], sliding_window=8,
                                      n_group=4, topk_group=2, routed_scaling_factor=2.5, head_dim=16)),
    "mimo_v2_flash": ("mimo_v2_flash", dict(num_hidden_layers=3, n_routed_experts=16, num_experts_per_tok=4, moe_intermediate_size=32,
                                            mlp_layer_types=["dense", "sparse", "sparse"], layer_types=["full_attention", "sliding_attention", "full_attention"],
                                            sliding_window=8, n_group=4, topk_group=2, head_dim=16, v_head_dim=16)),
    "kimi_linear": ("kimi_linear", dict(num_hidden_layers=3, num_experts=16, num_experts_per_token=4, num_shared_experts=1, moe_intermediate_size=32,
                                        mlp_layer_types=["dense", "sparse", "sparse"], layer_types=["linear_attention", "full_attention", "linear_attention"],
                                        num_expert_group=4, topk_group=2, pad_token_id=None, linear_head_dim=16, linear_num_heads=4,
                                        **{k: v for k, v in MLA.items() if k != "q_lora_rank"})),
}
# Routing-bias buffers: set non-zero, or a rule that ignores them would pass by accident.
BIAS_NAMES = ("e_score_correction_bias", "expert_bias")


def tiny_config(family: str):
    from transformers import AutoConfig

    model_type, overrides = TINY[family]
    kwargs = dict(COMMON) if family != "dbrx" else {}
    kwargs.update(overrides)
    kwargs = {k: v for k, v in kwargs.items() if v is not None or k == "pad_token_id"}
    if family == "jetmoe":
        kwargs.pop("num_attention_heads", None)
    return AutoConfig.for_model(model_type, **kwargs)


def build(family: str, out_dir: str, seed: int = 0) -> str:
    from transformers import AutoModelForCausalLM

    config = tiny_config(family)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Routers initialise to zeros in some families: random weights everywhere, large enough to route.
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() >= 2 and p.shape[-1] == H else 0.1) if p.dim() >= 2 else p + 0.05 * torch.randn(p.shape, generator=g))
        for name, b in list(model.named_buffers()) + list(model.named_parameters()):
            if name.rsplit(".", 1)[-1] in BIAS_NAMES or name.endswith("moe_statics.e_score_correction_bias"):
                b.copy_(torch.rand(b.shape, generator=g) * 0.6 - 0.3)
    model.save_pretrained(out_dir)
    tokenizer_json(os.path.join(out_dir, "tokenizer.json"))
    return out_dir


_TOKENIZER: list[str] = []


def tokenizer_json(path: str) -> None:
    """One trained byte-level BPE per process, copied to each checkpoint."""
    import shutil

    if _TOKENIZER:
        shutil.copyfile(_TOKENIZER[0], path)
        return
    _TOKENIZER.append(path)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=V, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"])
    tok.train_from_iterator(["Answer: A", "Answer: B", "Answer: C", "Answer: D", "The quick brown fox jumps over the lazy dog."] * 50, trainer)
    tok.save(path)


if __name__ == "__main__":
    import sys
    import tempfile
    import time

    for fam in sys.argv[1:] or TINY:
        t0 = time.time()
        d = tempfile.mkdtemp(prefix=f"tiny-{fam}-")
        try:
            build(fam, d)
            cfg = json.load(open(os.path.join(d, "config.json")))
            print(fam, "ok", f"{time.time() - t0:.1f}s", sorted(os.listdir(d)))
        except Exception as e:
            print(fam, "FAIL", type(e).__name__, str(e)[:300])
