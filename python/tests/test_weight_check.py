"""The PyTorch engine refuses a checkpoint whose weights do not match its config (issue 21 item 6): missing
layers, a removed lm_head, norm or router tensor, unexpected tensors and mis-shaped tensors are named, never
filled with random values and reported as a loaded model. Checkpoints are written by transformers itself."""
import json
import os

import pytest
import torch

from moe_scope_worker import engine
from moe_scope_worker.protocol import EngineFailure
from moe_scope_worker.weight_check import problems_of
from test_engine_load import byte_level_tokenizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from transformers import OlmoeConfig, OlmoeForCausalLM

    d = tmp_path_factory.mktemp("olmoe")
    cfg = OlmoeConfig(
        vocab_size=300, hidden_size=16, intermediate_size=8, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        num_experts=4, num_experts_per_tok=2, max_position_embeddings=64, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    OlmoeForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    byte_level_tokenizer(d / "tokenizer.json")
    return d


def variant(saved, tmp_path, *, config=None, drop=(), reshape=None):
    """A copy of the saved checkpoint with config fields changed, tensors removed or one tensor reshaped."""
    from safetensors.torch import load_file, save_file

    for f in os.listdir(saved):
        if f != "model.safetensors":
            (tmp_path / f).write_bytes((saved / f).read_bytes())
    tensors = load_file(str(saved / "model.safetensors"))
    names = sorted(tensors)
    for pattern in drop:
        hit = [n for n in names if pattern in n]
        assert hit, f"no tensor matches {pattern}: {names}"
        for n in hit:
            tensors.pop(n)
    if reshape:
        name = next(n for n in names if reshape in n)
        tensors[name] = torch.zeros(tensors[name].shape[0] + 1, *tensors[name].shape[1:])
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    if config:
        c = json.loads((saved / "config.json").read_text())
        c.update(config)
        (tmp_path / "config.json").write_text(json.dumps(c))
    return str(tmp_path)


def load(d):
    return engine.Engine(lambda level, message: None).load(d, {"executionProvider": "cpu"})


def test_the_intact_checkpoint_loads(saved):
    info = load(str(saved))
    assert info["numLayers"] == 2


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(config={"num_hidden_layers": 3}), r"model\.layers\.2\."),
        (dict(drop=["lm_head"]), r"lm_head\.weight"),
        (dict(drop=["model.norm.weight"]), r"model\.norm\.weight"),
        (dict(drop=["layers.1.mlp.gate.weight"]), r"model\.layers\.1\.mlp\.gate\.weight"),
        (dict(config={"num_hidden_layers": 1}), r"not part of the model.*model\.layers\.1\."),
    ],
    ids=["one-layer-more-in-config", "no-lm-head", "no-final-norm", "no-router", "one-layer-less-in-config"],
)
def test_missing_or_unexpected_tensors_are_refused_by_name(saved, tmp_path, change, named):
    d = variant(saved, tmp_path, **change)
    with pytest.raises(EngineFailure) as info:
        load(d)
    assert info.value.code == "bad-model"
    msg = str(info.value)
    assert "do not match config.json" in msg and "\n" not in msg, msg
    import re

    assert re.search(named, msg), msg


def test_a_mis_shaped_tensor_is_refused_in_one_line(saved, tmp_path):
    d = variant(saved, tmp_path, reshape="model.norm.weight")
    with pytest.raises(EngineFailure) as info:
        load(d)
    msg = str(info.value)
    assert info.value.code == "bad-model" and "\n" not in msg, msg
    assert "model.norm.weight" in msg, msg


def test_the_report_in_words():
    assert problems_of({"missing_keys": set(), "unexpected_keys": [], "mismatched_keys": set(), "error_msgs": []}) == []
    p = problems_of({"missing_keys": {f"k{i}" for i in range(9)}, "mismatched_keys": {("w", (2, 3), (3, 3))}})
    assert p[0].startswith("9 tensors the config needs") and "and 3 more" in p[0]
    assert p[1] == "1 tensors have the wrong shape (w is [2, 3] in the files, the config needs [3, 3])"


def test_a_fifo_config_is_named_as_a_fifo_not_missing(tmp_path):
    from moe_scope_worker import checkpoint

    os.mkfifo(tmp_path / "config.json")
    with pytest.raises(EngineFailure, match=r"config\.json: not a regular file \(a FIFO\)"):
        checkpoint.resolve_model_dir(str(tmp_path))
    with pytest.raises(EngineFailure, match=r"config\.json: not a regular file \(a FIFO\)"):
        checkpoint.read_config(str(tmp_path))
