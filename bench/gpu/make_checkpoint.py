"""Writes an OLMoE-shaped checkpoint with random weights, fast: tensors are drawn on the GPU (when there
is one) and written shard by shard in parallel, in the Hugging Face layout of the real OLMoE-1B-7B
(per-expert gate/up/down tensors, bf16, model.safetensors.index.json). The tokenizer is copied in.

  python3 make_checkpoint.py --out DIR --tokenizer DIR [--tiny] [--dtype bf16|f32]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from safetensors.torch import save_file

FULL = dict(hidden=2048, layers=16, heads=16, experts=64, top_k=8, inter=1024, vocab=50304)
TINY = dict(hidden=64, layers=4, heads=4, experts=64, top_k=8, inter=32, vocab=4096)


def tensor_shapes(s: dict) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, init) in file order; init is 'normal' (std 0.02) or 'ones' (norm weights)."""
    h, i, e = s["hidden"], s["inter"], s["experts"]
    out = [("model.embed_tokens.weight", (s["vocab"], h), "normal")]
    for l in range(s["layers"]):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (h,), "ones"), (p + "post_attention_layernorm.weight", (h,), "ones")]
        out += [(p + f"self_attn.{n}_proj.weight", (h, h), "normal") for n in "qkvo"]
        out += [(p + "self_attn.q_norm.weight", (h,), "ones"), (p + "self_attn.k_norm.weight", (h,), "ones")]
        out += [(p + "mlp.gate.weight", (e, h), "normal")]
        for x in range(e):
            q = p + f"mlp.experts.{x}."
            out += [(q + "gate_proj.weight", (i, h), "normal"), (q + "up_proj.weight", (i, h), "normal"), (q + "down_proj.weight", (h, i), "normal")]
    out += [("model.norm.weight", (h,), "ones"), ("lm_head.weight", (s["vocab"], h), "normal")]
    return out


def config_of(s: dict, dtype: str) -> dict:
    return {
        "architectures": ["OlmoeForCausalLM"],
        "model_type": "olmoe",
        "hidden_size": s["hidden"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["heads"],
        "intermediate_size": s["inter"],
        "num_experts": s["experts"],
        "num_experts_per_tok": s["top_k"],
        "vocab_size": s["vocab"],
        "max_position_embeddings": 4096,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "norm_topk_prob": False,
        "clip_qkv": None,
        "attention_bias": False,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.01,
        "pad_token_id": 1,
        "eos_token_id": 0,
        "bos_token_id": None,
        "torch_dtype": "bfloat16" if dtype == "bf16" else "float32",
        "moe_scope_demo": "Benchmark checkpoint with OLMoE-1B-7B's shapes and RANDOM weights (bench/gpu).",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json (and tokenizer_config.json)")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--shard-gb", type=float, default=1.0)
    a = ap.parse_args()
    t0 = time.time()
    s = TINY if a.tiny else FULL
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(a.out, exist_ok=True)
    shapes = tensor_shapes(s)
    size = dtype.itemsize if hasattr(dtype, "itemsize") else torch.tensor([], dtype=dtype).element_size()
    shards: list[list] = [[]]
    acc = 0
    for name, shape, init in shapes:
        n = size
        for d in shape:
            n *= d
        if acc + n > a.shard_gb * 1e9 and shards[-1]:
            shards.append([])
            acc = 0
        shards[-1].append((name, shape, init))
        acc += n
    files = [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))]
    torch.manual_seed(0)

    def write(k: int) -> int:
        tensors = {}
        for name, shape, init in shards[k]:
            if init == "ones":
                t = torch.ones(shape, dtype=dtype, device=device)
            else:
                t = torch.empty(shape, dtype=dtype, device=device).normal_(0.0, 0.02)
            tensors[name] = t.cpu()
        save_file(tensors, os.path.join(a.out, files[k]), metadata={"format": "pt"})
        return sum(t.numel() for t in tensors.values())

    with ThreadPoolExecutor(max_workers=min(8, len(shards))) as pool:
        total = sum(pool.map(write, range(len(shards))))
    index = {"metadata": {"total_size": total * size}, "weight_map": {name: files[k] for k, sh in enumerate(shards) for name, _, _ in sh}}
    with open(os.path.join(a.out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config_of(s, a.dtype), f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(a.tokenizer, name)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(a.out, name))
    print(json.dumps({"parameters": total, "bytes": total * size, "shards": len(shards), "device": device, "seconds": round(time.time() - t0, 2)}))


if __name__ == "__main__":
    main()
