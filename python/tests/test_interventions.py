"""moe_scope_worker.interventions on a toy router with transformers 5's TopKRouter contract."""
import json
import pathlib

import pytest
import torch

from moe_scope_worker.interventions import RouterInterventions, validate
from moe_scope_worker.protocol import EngineFailure

E, K = 6, 2


class ToyRouter(torch.nn.Module):
    """softmax over all experts, top-k, raw weights: (logits, top-k weights, top-k indices)."""

    def __init__(self, weight):
        super().__init__()
        self.top_k = K
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        logits = torch.nn.functional.linear(x, self.weight)
        top, idx = torch.topk(torch.softmax(logits, -1), K, dim=-1)
        return logits, top, idx


class ToyLayer(torch.nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.mlp = torch.nn.Module()
        self.mlp.gate = ToyRouter(weight)


def make(layers=2):
    torch.manual_seed(0)
    built = [ToyLayer(torch.randn(E, 4)) for _ in range(layers)]
    return built, RouterInterventions(built, {"numLayers": layers, "numExperts": E, "topK": K, "normTopKProb": False})


def test_masked_experts_are_never_chosen_and_the_rest_renormalise():
    layers, ri = make()
    x = torch.randn(5, 4)
    plain_logits, _, plain_idx = layers[1].mlp.gate(x)
    chosen = sorted(set(plain_idx[:, 0].tolist()))
    ri.set({"mask": [[1, e] for e in chosen], "bias": []})
    logits, top, idx = layers[1].mlp.gate(x)
    assert not any(e in chosen for e in idx.flatten().tolist())
    for e in chosen:
        assert torch.isinf(logits[:, e]).all()
    expected = torch.softmax(plain_logits.masked_fill(torch.isinf(logits), float("-inf")), -1)
    assert torch.allclose(top, torch.gather(expected, 1, idx), atol=1e-6)
    # Layer 0 is untouched, and clearing the intervention restores layer 1.
    assert torch.equal(layers[0].mlp.gate(x)[2], layers[0].mlp.gate.forward(x)[2])
    ri.set(None)
    assert torch.equal(layers[1].mlp.gate(x)[2], plain_idx)


def test_bias_is_added_to_the_logits_before_top_k():
    layers, ri = make()
    x = torch.randn(3, 4)
    plain_logits, _, _ = layers[0].mlp.gate(x)
    ri.set({"mask": [], "bias": [[0, 5, 100.0]]})
    logits, _, idx = layers[0].mlp.gate(x)
    assert torch.allclose(logits[:, 5], plain_logits[:, 5] + 100.0)
    assert (idx[:, 0] == 5).all()


@pytest.mark.parametrize(
    "iv, message",
    [
        ({"mask": [[2, 0]], "bias": []}, r"layer 2 does not exist"),
        ({"mask": [[0, 6]], "bias": []}, r"expert 6 of layer 0 does not exist"),
        ({"mask": [[0, 1, 2]], "bias": []}, r"mask\[0\] must be a \[layer, expert\] pair"),
        ({"mask": [], "bias": [[0, 1, float("nan")]]}, r"bias must be a finite number"),
        ({"mask": [[0, e] for e in range(E - K + 1)], "bias": []}, r"layer 0 would keep 1 of 6 experts, fewer than the 2"),
        ({"mask": [[0, e] for e in range(E)], "bias": []}, r"every expert of a layer"),
    ],
)
def test_bad_interventions_are_refused_with_the_field_and_the_problem(iv, message):
    with pytest.raises(EngineFailure, match=message):
        validate(iv, 2, E, K)


def test_validation_matches_the_typescript_validator_case_for_case():
    """The cases test/unit/analysis-interventions.test.ts runs against src/analysis/interventions.ts."""
    table = json.loads((pathlib.Path(__file__).parents[2] / "test" / "support" / "intervention-cases.json").read_text(encoding="utf-8"))
    shape = table["shape"]
    assert len(table["cases"]) >= 10
    for case in table["cases"]:
        try:
            validate(case["intervention"], shape["numLayers"], shape["numExperts"], shape["topK"], "S")
        except EngineFailure as e:
            assert e.code == "bad-input"
            assert str(e) == case["error"], (case["name"], str(e))
        else:
            assert case["error"] is None, f"{case['name']}: accepted, expected {case['error']!r}"
