"""Interventions in every routing kind, on tiny checkpoints transformers wrote: a masked expert is never
chosen, and the routing under a mask or a steering bias equals transformers' own forward with the same
change applied by hand (the router's logits offset through torch.nn.functional.linear, the choosing bias
buffer edited), read from what the experts received."""
import contextlib
import re
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moe_scope_worker import engine
from test_family_parity import reference

# One family per routing kind, and each way the routing is read (experts call, JetMoE's dispatch, Llama 4's
# router) and each place a choosing bias lives (router buffer, block buffer, ERNIE's statics, LongCat's).
KINDS = {
    "olmoe": "softmax-topk",
    "mixtral": "softmax-topk-renorm",
    "gpt_oss": "softmax-topk-renorm",
    "jetmoe": "softmax-topk-renorm",
    "ernie4_5_moe": "softmax-bias-choice",
    "longcat_flash": "softmax-bias-choice",
    "deepseek_v2": "softmax-group-scaled",
    "deepseek_v3": "sigmoid-bias-group",
    "lfm2_moe": "sigmoid-bias-group",
    "afmoe": "sigmoid-bias-group",
    "llama4": "topk-sigmoid-input",
    "phimoe": "sparsemixer",
}
IDS = [5, 17, 250, 3, 99, 42, 7, 120, 64, 33, 280, 11]
LAYER = re.compile(r"\.(?:layers|blocks)\.(\d+)\.")


def by_hand(num_experts: int, hidden: int, logit_offsets: dict, choice_offsets: dict):
    """A prepare(model) for reference(): offsets {decoder layer: {expert: value}} added to that layer's router
    logits (the [experts, hidden] router projection, found by name) and to its choosing-bias buffer."""

    def prepare(model):
        weights = {}
        for name, p in model.named_parameters():
            m = LAYER.search("." + name)
            if m and p.dim() == 2 and tuple(p.shape) == (num_experts, hidden) and ("router" in name or ".gate." in name) and "shared" not in name and "attention" not in name:
                weights[id(p)] = int(m.group(1))
        with torch.no_grad():
            for name, b in list(model.named_buffers()) + list(model.named_parameters()):
                m = LAYER.search("." + name)
                if m and name.rsplit(".", 1)[-1] in ("e_score_correction_bias", "expert_bias"):
                    for expert, value in choice_offsets.get(int(m.group(1)), {}).items():
                        b.view(-1)[expert] += value
        linear = F.linear

        def offset_linear(x, weight, bias=None):
            out = linear(x, weight, bias)
            layer = weights.get(id(weight))
            if layer is None or layer not in logit_offsets:
                return out
            add = torch.zeros(out.shape[-1])
            for expert, value in logit_offsets[layer].items():
                add[expert] += value
            return out + add

        assert weights, "no router projection found by name"
        return mock.patch.object(F, "linear", offset_linear)

    return prepare


def routing(result):
    r = result["routing"]
    shape = (r["numLayers"], r["numTokens"], r["topK"])
    return np.asarray(r["topExperts"]).reshape(shape), np.asarray(r["topWeights"]).reshape(shape)


def assert_equal_to(reference_seen, experts, weights, what):
    for row, (idx, w) in enumerate(reference_seen):
        for t in range(idx.shape[0]):
            want = {int(i): float(x) for i, x in zip(idx[t], w[t])}
            got = {int(i): float(x) for i, x in zip(experts[row, t], weights[row, t])}
            assert set(got) == set(want), f"{what}: row {row}, token {t}: engine {sorted(got)} != transformers by hand {sorted(want)}"
            assert max(abs(got[i] - want[i]) for i in want) <= 1e-5, f"{what}: row {row}, token {t}: weights differ"


@pytest.mark.parametrize("family", list(KINDS))
def test_mask_and_bias_equal_transformers_with_the_same_change_by_hand(checkpoints, family):
    e = engine.Engine(lambda level, message: None)
    info = e.load(checkpoints[family], {"executionProvider": "cpu"})
    assert info["routing"]["kind"] == KINDS[family]
    E, H = info["numExperts"], info["hiddenSize"]
    plain, _ = routing(e.trace({"input": {"ids": IDS}, "options": {}}))
    # Mask, in every row, the expert chosen most often there (so that the mask changes the routing).
    busiest = [int(np.bincount(plain[row].reshape(-1), minlength=E).argmax()) for row in range(info["numLayers"])]
    masked = e.trace({"input": {"ids": IDS}, "options": {"intervention": {"mask": [[row, x] for row, x in enumerate(busiest)], "bias": []}}})
    experts, weights = routing(masked)
    for row, x in enumerate(busiest):
        assert x not in experts[row], f"decoder layer {info['moeLayers'][row]}: masked expert {x} was chosen"
    has_choice_bias = KINDS[family] in ("sigmoid-bias-group", "softmax-bias-choice")
    offsets = {layer: {x: float("-inf")} for layer, x in zip(info["moeLayers"], busiest)}
    seen, _ = reference(checkpoints[family], family, IDS, by_hand(E, H, offsets, offsets if has_choice_bias else {}))
    assert_equal_to(seen, experts, weights, "mask")
    # Steer: a bias on the expert chosen least often in the last row, added where the family chooses.
    row = info["numLayers"] - 1
    rare = int(np.bincount(plain[row].reshape(-1), minlength=E).argmin())
    steered = e.trace({"input": {"ids": IDS}, "options": {"intervention": {"mask": [], "bias": [[row, rare, 10.0]]}}})
    experts, weights = routing(steered)
    assert (experts[row] == rare).sum() > (plain[row] == rare).sum(), "the steering bias changed nothing"
    bias = {info["moeLayers"][row]: {rare: 10.0}}
    on_choice = KINDS[family] == "sigmoid-bias-group"
    seen, _ = reference(checkpoints[family], family, IDS, by_hand(E, H, {} if on_choice else bias, bias if on_choice else {}))
    assert_equal_to(seen, experts, weights, "bias")
    # Clearing the intervention restores the model's own routing (the choosing biases included).
    again, _ = routing(e.trace({"input": {"ids": IDS}, "options": {}}))
    assert (again == plain).all()
