"""
Trains the demo's toy model: OLMoE's layout (the `make-demo-model --family olmoe` checkpoint: 16 layers x
64 experts, top-8, tiny widths) trained for a few minutes on the text of MMLU's dev and val splits, so that
its routers have learnt something a trace can show. It is a toy, not OLMoE.

    python python/train_demo_model.py --init INIT --mmlu MMLU --out OUT [--steps N]

INIT is the random demo checkpoint (its tokenizer and initial weights; scripts/make-trained-demo-model.sh
makes it with the tokenizer learnt from dev+val only). MMLU is the unpacked MMLU folder (data/dev, data/val,
data/test). OUT receives what transformers' save_pretrained writes (config.json, model.safetensors), the
tokenizer files, README.md and training.json (data, settings, losses, the weights' SHA-256).

Only data/dev/*_dev.csv and data/val/*_val.csv are read as training text; data/test is read only to drop
any dev/val question whose text is also a test question, and a check after building the corpus fails the
run if a test question's text is in it. Deterministic: fixed seeds, a fixed thread count and
torch.use_deterministic_algorithms, so two runs on one machine write byte-identical weights.
"""
import argparse
import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time

TRAINED_NOTE = (
    "MoE Scope's demo model: a TOY trained for a few minutes on MMLU dev/val text (never the test split), "
    "in OLMoE's layout (16 layers x 64 experts, top-8) with tiny widths. It is not OLMoE: its routing shows "
    "what a small router learns from that text, and its answers are near chance."
)
TRAINING_SPLITS = ("dev", "val")


def read_split(mmlu_dir, split):
    """[(subject, question, [choices], answer letter, file)] of data/<split>/*_<split>.csv, in file order."""
    folder = os.path.join(mmlu_dir, "data", split)
    if not os.path.isdir(folder):
        sys.exit(f"train_demo_model: {folder} does not exist (pass --mmlu with the unpacked MMLU folder: scripts/unpack-mmlu.sh prints it)")
    rows = []
    suffix = f"_{split}.csv"
    for name in sorted(os.listdir(folder)):
        if not name.endswith(suffix):
            continue
        path = os.path.join(folder, name)
        with open(path, newline="", encoding="utf-8") as f:
            for n, fields in enumerate(csv.reader(f), start=1):
                if len(fields) != 6 or fields[5] not in ("A", "B", "C", "D"):
                    sys.exit(f"train_demo_model: {path} row {n}: expected question, 4 choices and an answer letter A-D, got {len(fields)} fields")
                rows.append((name[: -len(suffix)], fields[0], fields[1:5], fields[5], path))
    if not rows:
        sys.exit(f"train_demo_model: {folder} holds no *{suffix} files")
    return rows


def question_key(question):
    return " ".join(question.split()).lower()


def training_questions(mmlu_dir):
    """The dev and val questions, less any whose text is a test question; and what was dropped."""
    test_keys = {question_key(q) for _, q, _, _, _ in read_split(mmlu_dir, "test")}
    kept, dropped = [], []
    for split in TRAINING_SPLITS:
        for row in read_split(mmlu_dir, split):
            (dropped if question_key(row[1]) in test_keys else kept).append(row)
    files = sorted({os.path.relpath(r[4], mmlu_dir) for r in kept})
    assert all(f.startswith(os.path.join("data", "dev") + os.sep) or f.startswith(os.path.join("data", "val") + os.sep) for f in files), files
    return kept, dropped, files, test_keys


def corpus_documents(rows):
    """One document per subject in the lm-evaluation-harness MMLU prompt layout, every question answered."""
    by_subject = {}
    for subject, question, choices, answer, _ in rows:
        by_subject.setdefault(subject, []).append(
            f"{question.strip()}\nA. {choices[0]}\nB. {choices[1]}\nC. {choices[2]}\nD. {choices[3]}\nAnswer: {answer}\n\n"
        )
    return [
        f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n" + "".join(items)
        for subject, items in sorted(by_subject.items())
    ]


def check_no_test_text(documents, test_keys):
    """Fails when any test question's text (whitespace-normalised) appears as a question of the corpus."""
    seen = set()
    for doc in documents:
        for block in doc.split("\n\n"):
            if "\nA. " in block:
                seen.add(question_key(block.split("\nA. ")[0]))
    leaked = seen & test_keys
    if leaked:
        sys.exit(f"train_demo_model: {len(leaked)} test question(s) in the training text, e.g. {sorted(leaked)[0][:80]!r}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    ap.add_argument("--init", required=True, help="the random OLMoE-shaped demo checkpoint (make-demo-model --family olmoe)")
    ap.add_argument("--mmlu", required=True, help="the unpacked MMLU folder (data/dev, data/val, data/test)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="fixed so that the result does not depend on the machine's core count; one thread also keeps a busy machine from stalling the run")
    args = ap.parse_args()

    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    rows, dropped, files, test_keys = training_questions(args.mmlu)
    documents = corpus_documents(rows)
    check_no_test_text(documents, test_keys)
    corpus_sha = hashlib.sha256("\x00".join(documents).encode("utf-8")).hexdigest()

    tokenizer = Tokenizer.from_file(os.path.join(args.init, "tokenizer.json"))
    with open(os.path.join(args.init, "config.json")) as f:
        init_config = json.load(f)
    if init_config.get("model_type") != "olmoe":
        sys.exit(f"train_demo_model: {args.init}/config.json: model_type is {init_config.get('model_type')!r}, expected 'olmoe' (make-demo-model --family olmoe)")
    eos = init_config["eos_token_id"]
    stream = []
    for doc in documents:
        stream.extend(tokenizer.encode(doc).ids)
        stream.append(eos)
    windows = len(stream) // args.seq_len
    data = torch.tensor(stream[: windows * args.seq_len], dtype=torch.long).view(windows, args.seq_len)

    model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0)
    warmup = max(1, args.steps // 20)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    order = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(windows, generator=order)
    cursor = 0
    losses = []
    for step in range(args.steps):
        if cursor + args.batch > windows:
            perm = torch.randperm(windows, generator=order)
            cursor = 0
        batch = data[perm[cursor : cursor + args.batch]]
        cursor += args.batch
        # OLMoE's own objective: next-token loss plus its router load-balancing loss (router_aux_loss_coef).
        out = model(input_ids=batch, labels=batch, output_router_logits=True, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(out.loss.item(), 4))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"[train-demo] step {step + 1}/{args.steps} loss {losses[-1]:.3f} ({time.time() - t0:.0f} s)", flush=True)

    model.eval()
    model.config.moe_scope_demo = TRAINED_NOTE
    # src/shared/demoLabel.ts TRAINED_DEMO_CONFIG_FIELD: the UI names it a trained toy, not "random weights".
    model.config.moe_scope_demo_trained = True
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.init, name), os.path.join(args.out, name))
    weights_sha = sha256_file(os.path.join(args.out, "model.safetensors"))
    record = {
        "note": TRAINED_NOTE,
        "trainingFiles": files,
        "questions": len(rows),
        "droppedAsTestDuplicates": len(dropped),
        "corpusSha256": corpus_sha,
        "tokens": len(stream),
        "settings": {k: getattr(args, k) for k in ("steps", "batch", "seq_len", "lr", "seed", "threads")},
        "torch": torch.__version__,
        "losses": losses,
        "modelSha256": weights_sha,
        "seconds": round(time.time() - t0, 1),
    }
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(
            f"# MoE Scope demo model (trained toy)\n\n{TRAINED_NOTE}\n\n"
            f"Trained by `python/train_demo_model.py` on {len(rows)} MMLU dev/val questions ({len(stream)} tokens), "
            f"{args.steps} steps of {args.batch} x {args.seq_len} tokens; see training.json.\n"
        )
    print(f"[train-demo] wrote {args.out} in {time.time() - t0:.0f} s: loss {losses[0]:.2f} -> {losses[-1]:.2f}, model.safetensors sha256 {weights_sha}")


if __name__ == "__main__":
    main()
