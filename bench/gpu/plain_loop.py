"""The baseline the PyTorch engine is measured against: transformers' own model on the same prompts,
whole prompts every time (no prefix reuse), batched and sorted by length, with every layer's router
logits copied to the host and the answer letters' log-probabilities at the last position.

The prompts are the exact token ids the engine scored (MOE_SCOPE_BENCH_DUMP_PROMPTS: int32 length, then
the ids). A time cap keeps it inside the benchmark's budget: it then runs an evenly spread subset and
says so; tokens/s and questions/s are comparable either way.

  python3 plain_loop.py --model DIR --prompts FILE [--batch-size 32] [--max-seconds 40] [--out result.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch


def read_prompts(path: str) -> list[np.ndarray]:
    data = np.fromfile(path, dtype="<i4")
    out, pos = [], 0
    while pos < len(data):
        n = int(data[pos])
        out.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=40.0)
    ap.add_argument("--max-prompts", type=int, default=0, help="evenly spread subset of at most this many (0 = all)")
    ap.add_argument("--out")
    a = ap.parse_args()
    from transformers import AutoModelForCausalLM

    prompts = read_prompts(a.prompts)
    total_prompts = len(prompts)
    if a.max_prompts and total_prompts > a.max_prompts:
        step = total_prompts / a.max_prompts
        prompts = [prompts[int(i * step)] for i in range(a.max_prompts)]
    prompts.sort(key=len)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    t0 = time.time()
    try:
        import accelerate  # noqa: F401

        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, local_files_only=True, device_map=str(device))
    except ImportError:
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype, local_files_only=True).to(device)
    model.eval()
    load_s = time.time() - t0
    base = getattr(model, model.base_model_prefix)
    head = model.get_output_embeddings()
    # " A".." D" do not matter for the timing; the last position's full-vocabulary log-softmax is computed.
    # Batches are drawn from the whole length range in turn (short, long, ...) so a time cap still sees all lengths.
    batches = [prompts[i : i + a.batch_size] for i in range(0, len(prompts), a.batch_size)]
    order = [b for pair in zip(batches[: len(batches) // 2], reversed(batches[len(batches) // 2 :])) for b in pair]
    if len(batches) % 2:
        order.append(batches[len(batches) // 2])
    done_prompts = computed = real = 0
    with torch.inference_mode():
        # One warm-up batch (kernel selection, allocator) is not timed.
        warm = order[0]
        base(input_ids=torch.tensor(np.stack([p[: min(len(q) for q in warm)] for p in warm]), device=device), output_router_logits=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.time()
        for batch in order:
            B, S = len(batch), max(len(p) for p in batch)
            ids = np.zeros((B, S), dtype=np.int64)
            mask = np.zeros((B, S), dtype=np.int64)
            for b, p in enumerate(batch):
                ids[b, : len(p)] = p
                mask[b, : len(p)] = 1
            out = base(input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device), output_router_logits=True)
            lens = torch.tensor([len(p) for p in batch], device=device)
            last = out.last_hidden_state[torch.arange(B, device=device), lens - 1]
            logp = torch.log_softmax(head(last).float(), dim=-1)
            router = [r.float().cpu() for r in out.router_logits]  # to the host, as the engine's routing is
            logp.cpu()
            done_prompts += B
            computed += B * S
            real += int(mask.sum())
            if time.time() - t1 > a.max_seconds:
                break
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.time() - t1
    res = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "loadSeconds": round(load_s, 2),
        "promptsAvailable": total_prompts,
        "promptsRun": done_prompts,
        "subset": done_prompts < total_prompts,
        "batchSize": a.batch_size,
        "seconds": round(seconds, 3),
        "computedTokens": computed,
        "promptTokens": real,
        "tokensPerSecond": round(real / seconds, 1),
        "questionsPerSecond": round(done_prompts / seconds, 2),
        "estimatedFullSeconds": round(total_prompts / (done_prompts / seconds), 1),
        "peakGpuGiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None,
    }
    print(json.dumps(res), file=sys.stderr)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
