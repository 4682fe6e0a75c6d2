"""
An OLMoE-1B-7B-shaped checkpoint in the format transformers writes: hidden 2048, 16 heads, expert
intermediate 1024, 64 experts, top-8, vocabulary 50304, random weights, bf16 safetensors shards.

    python bench/precision_checkpoint.py --out DIR [--layers N | --full] --tokenizer-dir TOK

With one decoder layer, transformers itself writes it (OlmoeForCausalLM + save_pretrained). A larger model
cannot be written that way within a bounded memory: transformers 5 holds the experts fused in memory and
save_pretrained splits them back into per-expert tensors, which copies them (measured: over 19 GB resident
for the 16-layer model before a third of its shards were written). So the larger model is written layer by
layer, one shard per decoder layer, with the tensor names, shapes, dtypes, shard naming and index that
save_pretrained gave the 1-layer model (written first, into a scratch folder, as the template), and its
config.json with num_hidden_layers changed. Peak memory: the 1-layer model (~1 GB).

Weights get a fan-in scale (transformers' 0.02 initialisation makes routers almost uniform); norms are 1.
"""
import argparse
import json
import math
import os
import re
import shutil
import tempfile

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {"BF16": torch.bfloat16, "F32": torch.float32, "F16": torch.float16}


def config_for(layers):
    return transformers.OlmoeConfig(
        vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=layers, num_attention_heads=16,
        num_key_value_heads=16, num_experts=64, num_experts_per_tok=8, norm_topk_prob=False, max_position_embeddings=4096,
        rms_norm_eps=1e-5, tie_word_embeddings=False, clip_qkv=None,
    )


def write_with_transformers(out, layers):
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = transformers.OlmoeForCausalLM(config_for(layers)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, max_shard_size="1GB")
    torch.set_default_dtype(torch.float32)


def template_of(folder):
    """{name: (shape, dtype)} of every tensor save_pretrained wrote, in file order."""
    tensors = {}
    for f in sorted(x for x in os.listdir(folder) if x.endswith(".safetensors")):
        with safe_open(os.path.join(folder, f), framework="pt") as h:
            for name in h.keys():
                s = h.get_slice(name)
                tensors[name] = (list(s.get_shape()), s.get_dtype())
    return tensors


def random_tensor(name, shape, dtype, gen):
    if len(shape) >= 2:
        t = torch.empty(shape, dtype=torch.float32)
        t.normal_(0.0, 1.0 / math.sqrt(shape[-1]), generator=gen)
        return t.to(DTYPES[dtype])
    return torch.ones(shape, dtype=DTYPES[dtype])  # norms, as transformers initialises them


def write_layer_by_layer(out, layers):
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as scratch:
        write_with_transformers(scratch, 1)
        template = template_of(scratch)
        index_file = os.path.join(scratch, "model.safetensors.index.json")
        index = json.load(open(index_file)) if os.path.exists(index_file) else {}
        config = json.load(open(os.path.join(scratch, "config.json")))
        extra = {f for f in os.listdir(scratch) if not f.endswith(".safetensors") and f not in ("config.json", "model.safetensors.index.json")}
        os.makedirs(out, exist_ok=True)
        for f in extra:
            shutil.copy(os.path.join(scratch, f), os.path.join(out, f))
    layer_re = re.compile(r"^(model\.layers\.)0(\..*)$")
    per_layer = {m.group(2): template[n] for n in template if (m := layer_re.match(n))}
    others = {n: v for n, v in template.items() if not layer_re.match(n)}
    shards = [others] + [{f"model.layers.{l}{rest}": v for rest, v in per_layer.items()} for l in range(layers)]
    gen = torch.Generator().manual_seed(0)
    weight_map, total, parameters = {}, 0, 0
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        data = {n: random_tensor(n, shape, dtype, gen) for n, (shape, dtype) in shard.items()}
        save_file(data, os.path.join(out, name), metadata={"format": "pt"})
        for n, t in data.items():
            weight_map[n] = name
            total += t.numel() * t.element_size()
            parameters += t.numel()
        del data
        print(f"wrote {name} ({len(shard)} tensors)", flush=True)
    metadata = dict(index.get("metadata", {}), total_size=total)
    if "total_parameters" in metadata:
        metadata["total_parameters"] = parameters
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": metadata, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    # transformers' own config.json for the 1-layer model, with the layer count changed.
    config["num_hidden_layers"] = layers
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="all 16 layers of OLMoE-1B-7B (about 14 GB of bf16)")
    ap.add_argument("--tokenizer-dir", required=True, help="folder whose tokenizer.json / tokenizer_config.json are copied")
    ap.add_argument("--layer-by-layer", action="store_true", help="write layer by layer even for one layer (to check the writer against save_pretrained)")
    args = ap.parse_args()
    layers = 16 if args.full else args.layers
    if layers == 1 and not args.layer_by_layer:
        write_with_transformers(args.out, 1)
        how = "save_pretrained"
    else:
        write_layer_by_layer(args.out, layers)
        how = "layer by layer, in save_pretrained's format"
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = os.path.join(args.tokenizer_dir, f)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(args.out, f))
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out) if f.endswith(".safetensors"))
    print(json.dumps({"layers": layers, "bytes": size, "written": how, "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
