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


_BYTES = {"F32": 4, "BF16": 2, "F16": 2, "I64": 8}


def write_safetensors(path, tensors, data_end=None):
    """A header and its data region, the data left sparse (zeros that take no disk)."""
    header, offset = {}, 0
    for name, (dt, shape) in tensors.items():
        size = _BYTES.get(dt, 1) * int(np.prod(shape))
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + (offset if data_end is None else data_end))


def test_routing_rule_per_family_and_clear_errors(tmp_path):
    from transformers import AutoConfig

    base = {"num_hidden_layers": 2, "hidden_size": 8, "vocab_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2}
    olmoe = checkpoint.routing_rule(AutoConfig.for_model("olmoe", **base, num_experts=64, num_experts_per_tok=8, norm_topk_prob=False), "c.json")
    assert (olmoe["family"], olmoe["routing"]["kind"], olmoe["routing"]["scoreFunction"], olmoe["sharedExperts"]) == ("olmoe", "softmax-topk", "softmax", 0)
    v3 = checkpoint.routing_rule(AutoConfig.for_model("deepseek_v3", **base, n_shared_experts=2, routed_scaling_factor=2.5), "c.json")
    assert (v3["routing"]["kind"], v3["routing"]["scoreFunction"], v3["routing"]["routedScalingFactor"], v3["sharedExperts"]) == ("sigmoid-bias-group", "sigmoid", 2.5, 2)
    qwen = checkpoint.routing_rule(AutoConfig.for_model("qwen2_moe", **base, norm_topk_prob=True, shared_expert_intermediate_size=16), "c.json")
    assert (qwen["routing"]["kind"], qwen["sharedExperts"]) == ("softmax-topk-renorm", 1)
    llama4 = checkpoint.routing_rule(AutoConfig.for_model("llama4_text", **base), "c.json")
    assert (llama4["family"], llama4["modelType"], llama4["routing"]["kind"]) == ("llama4", "llama4_text", "topk-sigmoid-input")
    longcat = checkpoint.routing_rule(AutoConfig.for_model("longcat_flash", hidden_size=8, vocab_size=32, num_attention_heads=2, num_key_value_heads=2, zero_expert_num=4), "c.json")
    assert longcat["routing"]["zeroExperts"] == 4
    with pytest.raises(EngineFailure, match=r"c.json: model_type 'llama' is not an MoE family the PyTorch engine runs \(supported: olmoe, .*kimi_linear\); the ONNX Runtime engine"):
        checkpoint.routing_rule(AutoConfig.for_model("llama", **base), "c.json")
    with pytest.raises(EngineFailure, match=r"c.json: topk_method 'noaux_tc' is not one transformers' DeepSeek-V2 router implements"):
        checkpoint.routing_rule(AutoConfig.for_model("deepseek_v2", **base, topk_method="noaux_tc"), "c.json")
    with pytest.raises(EngineFailure, match=r"c.json: vocab_size must be a positive integer"):
        checkpoint.routing_rule(AutoConfig.for_model("olmoe", num_hidden_layers=2, hidden_size=8, vocab_size=0, num_attention_heads=2), "c.json")


def test_weight_elements_reads_headers_only_and_names_a_broken_file(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", {"x": ("BF16", [4, 8]), "y": ("F32", [3])})
    write_safetensors(tmp_path / "b.safetensors", {"z": ("F32", [2, 2, 2])})
    assert checkpoint.weight_elements(str(tmp_path)) == 32 + 3 + 8
    (tmp_path / "c.safetensors").write_bytes(b"\x05")
    with pytest.raises(EngineFailure, match="c.safetensors: file is 1 bytes; a safetensors file starts with an 8-byte header length"):
        checkpoint.weight_elements(str(tmp_path))


@pytest.mark.parametrize(
    "damage, message",
    [
        (struct.pack("<Q", 10**12) + b"{}", r"bad.safetensors: header length at offset 0 exceeds the file \(size 10 bytes\)"),
        (struct.pack("<Q", 6) + b"{abc}!", r"bad.safetensors: unreadable safetensors header \(invalid JSON in header"),
        (None, r"bad.safetensors: safetensors header: the tensors' data_offsets do not cover the \d+-byte file exactly \(truncated"),
    ],
    ids=["length beyond the file", "not JSON", "truncated data"],
)
def test_a_damaged_header_is_refused_naming_the_file_and_the_problem(tmp_path, damage, message):
    bad = tmp_path / "bad.safetensors"
    if damage is None:
        write_safetensors(bad, {"w": ("F32", [4, 8])}, data_end=64)  # half of the tensor's 128 bytes
    else:
        bad.write_bytes(damage)
    with pytest.raises(EngineFailure, match=message) as info:
        checkpoint.weight_elements(str(tmp_path))
    assert info.value.code == "bad-model"


def test_a_foreign_dtype_is_refused_naming_the_file_the_tensor_and_the_dtype(tmp_path):
    write_safetensors(tmp_path / "model.safetensors", {"ok": ("F32", [2]), "model.layers.0.mlp.gate.weight": ("Q4_K", [4, 8])})
    with pytest.raises(EngineFailure, match=r'model.safetensors: tensor "model.layers.0.mlp.gate.weight": unsupported dtype "Q4_K"') as info:
        checkpoint.weight_elements(str(tmp_path))
    assert info.value.code == "bad-model"
    # a dtype safetensors knows and MoE Scope's ONNX reader does not (F8) still counts: the package decides
    write_safetensors(tmp_path / "model.safetensors", {"w": ("F8_E4M3", [4, 8])})
    assert checkpoint.weight_elements(str(tmp_path)) == 32


def test_a_fifo_named_like_a_weight_file_is_refused_without_blocking(tmp_path):
    import os

    os.mkfifo(tmp_path / "model.safetensors")
    with pytest.raises(EngineFailure, match=r"model.safetensors: not a regular file \(a FIFO\)"):
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
