"""The worker's errors carry the codes the host acts on: too little GPU memory is 'provider-unavailable'
(the host offers "Run on CPU"), NaN or infinity is 'non-finite', anything else keeps its code."""
import pytest
import torch

from moe_scope_worker import checkpoint, engine, framing
from moe_scope_worker.protocol import EngineFailure
from moe_scope_worker.server import error_of
from test_engine_load import model_dir  # a header-only checkpoint with a real tokenizer


def load_error(tmp_path, monkeypatch, device):
    monkeypatch.setattr(checkpoint, "available_memory", lambda d: (1_000_000, "free in the test"))
    monkeypatch.setattr(engine, "pick_device", lambda setting: device)
    monkeypatch.setattr(engine, "describe_device", lambda d: "cuda:0 Test GPU" if d.type == "cuda" else d.type)
    with pytest.raises(EngineFailure) as info:
        engine.Engine(lambda level, message: None).load(model_dir(tmp_path, 10_000_000), {"executionProvider": "auto"})
    return error_of(info.value)


def test_too_little_gpu_memory_is_provider_unavailable(tmp_path, monkeypatch):
    err = load_error(tmp_path, monkeypatch, torch.device("cuda", 0))
    assert err["code"] == "provider-unavailable", err
    assert "on cuda:0 Test GPU" in err["message"] and "only 0.0 GiB is free in the test" in err["message"], err


def test_too_little_ram_on_the_cpu_stays_bad_model(tmp_path, monkeypatch):
    # There is nowhere else to run it: offering the CPU would be wrong.
    err = load_error(tmp_path, monkeypatch, torch.device("cpu"))
    assert err["code"] == "bad-model", err


def test_cuda_out_of_memory_is_provider_unavailable():
    err = error_of(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert err["code"] == "provider-unavailable", err
    assert "out of GPU memory: CUDA out of memory. Tried to allocate 2.00 GiB" in err["message"] and '"cpu"' in err["message"], err


def test_non_finite_answers_and_results_are_non_finite():
    with pytest.raises(EngineFailure) as info:
        engine.Engine._check_finite([0.0, float("nan"), -1.0, -2.0], "score item q1")
    assert error_of(info.value)["code"] == "non-finite"
    with pytest.raises(framing.NonFiniteNumber) as nan:
        framing.encode({"type": "response", "id": 1, "ok": True, "result": {"entropy": float("inf")}})
    err = error_of(nan.value)
    assert err["code"] == "non-finite" and "inf" in err["message"], err


def test_other_failures_keep_their_code():
    assert error_of(EngineFailure("bad-input", "score: items must be an array")) == {"code": "bad-input", "message": "score: items must be an array"}
    assert error_of(RuntimeError("boom"))["code"] == "internal"
