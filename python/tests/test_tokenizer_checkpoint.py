import json
import struct

import numpy as np
import pytest

from moe_scope_worker import checkpoint
from moe_scope_worker.protocol import EngineFailure
from moe_scope_worker.tokenizer import utf16_offsets


def test_utf16_offsets_shift_after_astral_characters_only():
    text = "a\U0001d6fcb\u00e9c"
    # code points: a=0, alpha=1, b=2, e-acute=3, c=4
    off = np.array([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], dtype=np.int32)
    got = utf16_offsets(text, off)
    assert got.tolist() == [[0, 1], [1, 3], [3, 4], [4, 5], [5, 6]]
    assert "".join(text.encode("utf-16-le").decode("utf-16-le")) == text
    assert utf16_offsets("plain", off[:1]) is not None


def write_safetensors(path, tensors):
    header = {name: {"dtype": dt, "shape": shape, "data_offsets": [0, 0]} for name, (dt, shape) in tensors.items()}
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)


def test_routing_rule_per_family_and_clear_errors(tmp_path):
    base = {"num_hidden_layers": 2, "hidden_size": 8, "vocab_size": 32}
    olmoe = checkpoint.routing_rule({**base, "model_type": "olmoe", "num_experts": 64, "num_experts_per_tok": 8, "norm_topk_prob": False}, "c.json")
    assert (olmoe["numExperts"], olmoe["topK"], olmoe["normTopKProb"], olmoe["sharedExperts"]) == (64, 8, False, 0)
    mixtral = checkpoint.routing_rule({**base, "model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2}, "c.json")
    assert (mixtral["numExperts"], mixtral["normTopKProb"]) == (8, True)
    qwen = checkpoint.routing_rule({**base, "model_type": "qwen2_moe", "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True, "shared_expert_intermediate_size": 16}, "c.json")
    assert (qwen["normTopKProb"], qwen["sharedExperts"]) == (True, 1)
    with pytest.raises(EngineFailure, match="model_type 'llama' is not supported"):
        checkpoint.routing_rule({**base, "model_type": "llama"}, "c.json")
    with pytest.raises(EngineFailure, match=r"c.json: num_experts must be a positive integer"):
        checkpoint.routing_rule({**base, "model_type": "olmoe", "num_experts": "64"}, "c.json")
    with pytest.raises(EngineFailure, match=r"exceeds num_experts"):
        checkpoint.routing_rule({**base, "model_type": "olmoe", "num_experts": 4, "num_experts_per_tok": 8}, "c.json")


def test_weight_elements_reads_headers_only_and_names_a_broken_file(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", {"x": ("BF16", [4, 8]), "y": ("F32", [3])})
    write_safetensors(tmp_path / "b.safetensors", {"z": ("F32", [2, 2, 2])})
    assert checkpoint.weight_elements(str(tmp_path)) == 32 + 3 + 8
    (tmp_path / "c.safetensors").write_bytes(b"\x05")
    with pytest.raises(EngineFailure, match="c.safetensors: unreadable safetensors header"):
        checkpoint.weight_elements(str(tmp_path))


def test_model_dir_resolution_folder_and_hub_snapshot(tmp_path):
    with pytest.raises(EngineFailure, match="no such folder"):
        checkpoint.resolve_model_dir(str(tmp_path / "missing"))
    with pytest.raises(EngineFailure, match="config.json: missing"):
        checkpoint.resolve_model_dir(str(tmp_path))
    hub = tmp_path / "models--allenai--OLMoE"
    snap = hub / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (hub / "refs").mkdir()
    (hub / "refs" / "main").write_text("abc123\n")
    assert checkpoint.resolve_model_dir(str(hub)) == str(snap)
    assert checkpoint.resolve_model_dir(str(snap)) == str(snap)
