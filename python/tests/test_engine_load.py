import json
import struct

import pytest

from moe_scope_worker import checkpoint, engine
from moe_scope_worker.protocol import EngineFailure


def byte_level_tokenizer(path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"])
    tok.train_from_iterator(["Answer: A", "Answer: B", "Answer: C", "Answer: D"] * 50, trainer)
    tok.save(str(path))


def model_dir(tmp_path, elements):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "olmoe", "num_experts": 4, "num_experts_per_tok": 2, "num_hidden_layers": 1, "hidden_size": 8, "vocab_size": 300}))
    header = json.dumps({"w": {"dtype": "F32", "shape": [elements], "data_offsets": [0, 4 * elements]}}).encode()
    with open(tmp_path / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + 4 * elements)  # sparse: the data takes no disk and is never read
    byte_level_tokenizer(tmp_path / "tokenizer.json")
    return str(tmp_path)


def test_a_model_larger_than_the_device_memory_fails_before_loading_with_the_size(tmp_path, monkeypatch):
    d = model_dir(tmp_path, 300_000_000)  # 1.2 GB of sparse float32 that is never read
    monkeypatch.setattr(checkpoint, "available_memory", lambda device: (1_000_000_000, "free in the test"))
    e = engine.Engine(lambda level, message: None)
    with pytest.raises(EngineFailure) as info:
        e.load(d, {"executionProvider": "cpu", "precision": "fp32"})
    assert info.value.code == "bad-model"
    msg = str(info.value)
    assert "needs about 1.3 GiB in float32 on cpu (0.30 B parameters plus 15% headroom)" in msg, msg
    assert "only 0.9 GiB is free in the test" in msg, msg
    assert "bf16 would fit: use --precision bf16" in msg, msg
    assert e.model is None, "nothing was loaded"


def test_when_no_precision_of_this_engine_fits_the_message_names_int8_in_the_onnx_runtime_engine(tmp_path, monkeypatch):
    d = model_dir(tmp_path, 300_000_000)  # 0.6 GB in bf16 (plus headroom): more than the 0.5 GB the test offers
    monkeypatch.setattr(checkpoint, "available_memory", lambda device: (500_000_000, "free in the test"))
    e = engine.Engine(lambda level, message: None)
    for precision in ("bf16", "auto"):
        with pytest.raises(EngineFailure) as info:
            e.load(d, {"executionProvider": "cpu", "precision": precision})
        msg = str(info.value)
        assert info.value.code == "bad-model"
        assert "no precision this engine runs fits (fp32 about 1.3 GiB, bf16 about 0.6 GiB)" in msg, msg
        assert "--engine onnxruntime --provider cpu --precision int8" in msg, msg
    assert e.model is None, "nothing was loaded"


def test_auto_precision_on_the_cpu_is_fp32_when_it_fits_else_bf16_with_the_reason(tmp_path):
    import torch

    cpu = torch.device("cpu")
    dtype, name, why = engine.choose_precision("auto", cpu, 300_000_000, 2_000_000_000, "free in the test", str(tmp_path))
    assert (dtype, name) == (torch.float32, "fp32") and why.startswith("auto: fp32 fits"), why
    dtype, name, why = engine.choose_precision("auto", cpu, 300_000_000, 1_000_000_000, "free in the test", str(tmp_path))
    assert (dtype, name) == (torch.bfloat16, "bf16"), name
    assert "fp32 needs about 1.3 GiB, 0.9 GiB free in the test; bf16" in why, why
    dtype, name, why = engine.choose_precision("bf16", cpu, 300_000_000, 2_000_000_000, "free", str(tmp_path))
    assert (dtype, name, why) == (torch.bfloat16, "bf16", "requested")


def test_a_precision_the_pytorch_engine_cannot_run_is_refused_naming_what_can(tmp_path):
    d = model_dir(tmp_path, 10)
    for p in ("int8", "int4", "fp16"):
        with pytest.raises(EngineFailure, match=f"precision {p} cannot run in the PyTorch engine, which runs fp32, bf16") as info:
            engine.Engine(lambda level, message: None).load(d, {"executionProvider": "cpu", "precision": p})
        assert info.value.code == "bad-input"


def test_multi_token_answer_letters_are_reported_and_refused_by_this_engine(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    d = model_dir(tmp_path, 10)
    # Bytes only, no merges: " A" is two tokens ("\u0120", "A").
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.save(str(tmp_path / "tokenizer.json"))
    from moe_scope_worker.tokenizer import WorkerTokenizer

    scoring = WorkerTokenizer(d).answer_scoring()
    assert scoring["method"] == "continuation"
    assert [len(ids) for ids in scoring["letterTokenIds"]] == [2, 2, 2, 2]
    with pytest.raises(EngineFailure, match="scores single-token letters only"):
        engine.Engine(lambda level, message: None).load(d, {"executionProvider": "cpu"})


def test_cuda_asked_for_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(engine.torch.cuda, "is_available", lambda: False)
    with pytest.raises(EngineFailure, match="'cuda' was asked for, but this PyTorch sees no CUDA device"):
        engine.pick_device("cuda")
    assert engine.pick_device("cpu").type == "cpu"
