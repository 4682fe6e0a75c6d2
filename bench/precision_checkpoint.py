"""
An OLMoE-1B-7B-shaped checkpoint written by transformers itself (OlmoeForCausalLM + save_pretrained):
hidden 2048, 16 heads, expert intermediate 1024, 64 experts, top-8, vocabulary 50304, random weights, bf16
safetensors shards. By default only --layers 1 decoder layer (the shared 2-core / 24 GB machine this
benchmark was run on cannot hold the real 16-layer model in fp32); --full writes all 16 (about 14 GB).

    python bench/precision_checkpoint.py --out DIR [--layers N | --full] --tokenizer-dir TOK

Built layer by layer in bf16 (torch default dtype), so peak memory is about the bf16 model's size.
Weights get a fan-in scale (transformers' 0.02 initialisation makes routers almost uniform).
"""
import argparse
import json
import math
import os
import shutil

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="all 16 layers of OLMoE-1B-7B (about 14 GB of bf16)")
    ap.add_argument("--tokenizer-dir", required=True, help="folder whose tokenizer.json / tokenizer_config.json are copied")
    args = ap.parse_args()
    layers = 16 if args.full else args.layers
    config = transformers.OlmoeConfig(
        vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=layers, num_attention_heads=16,
        num_key_value_heads=16, num_experts=64, num_experts_per_tok=8, norm_topk_prob=False, max_position_embeddings=4096,
        rms_norm_eps=1e-5, tie_word_embeddings=False, clip_qkv=None,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = transformers.OlmoeForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, max_shard_size="1GB")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(args.tokenizer_dir, f)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(args.out, f))
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out) if f.endswith(".safetensors"))
    print(json.dumps({"layers": layers, "bytes": size, "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
