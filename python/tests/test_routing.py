import math

import torch

from moe_scope_worker.routing import routing_from_logits


def reference(row, k, norm):
    m = max(row)
    e = [math.exp(x - m) for x in row]
    s = sum(e)
    p = [x / s for x in e]
    order = sorted(range(len(p)), key=lambda i: (-p[i], i))[:k]
    w = [p[i] for i in order]
    if norm:
        t = sum(w)
        w = [x / t for x in w]
    return p, order, w, -sum(x * math.log(x) for x in p if x > 0)


def test_matches_a_plain_reference_with_and_without_renormalisation():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 16, generator=g)
    for norm in (False, True):
        probs, experts, weights, entropy = routing_from_logits(logits, 4, norm, True)
        for l in range(3):
            for t in range(5):
                p, order, w, h = reference(logits[l, t].tolist(), 4, norm)
                assert experts[l, t].tolist() == order
                assert max(abs(a - b) for a, b in zip(weights[l, t].tolist(), w)) < 1e-6
                assert max(abs(a - b) for a, b in zip(probs[l, t].tolist(), p)) < 1e-6
                assert abs(entropy[l, t].item() - h) < 1e-5


def test_ties_go_to_the_lower_expert_id():
    logits = torch.tensor([[[0.0, 1.0, 1.0, 0.5, 1.0]]])
    _, experts, weights, _ = routing_from_logits(logits, 2, False, False)
    assert experts[0, 0].tolist() == [1, 2]
    assert weights[0, 0, 0].item() == weights[0, 0, 1].item()
    assert experts.dtype == torch.int32


def test_observed_routing_keeps_the_models_choice_and_orders_slots_by_weight():
    from moe_scope_worker.routing import routing_from_observed

    index = torch.tensor([[[3, 1], [0, 2]]])
    weights = torch.tensor([[[0.2, 0.7], [0.5, 0.5]]])
    logits = torch.tensor([[[0.0, 1.0, -1.0, 2.0], [1.0, 1.0, 1.0, 1.0]]])
    probs, experts, w, entropy = routing_from_observed(index, weights, logits, "softmax", True)
    # The model's experts and weights, reordered only: a formula's top-k of these logits would be [3, 1].
    assert experts[0, 0].tolist() == [1, 3] and w[0, 0].tolist() == [0.699999988079071, 0.20000000298023224]
    assert experts[0, 1].tolist() == [0, 2], "equal weights keep the model's order"
    assert abs(entropy[0, 1].item() - math.log(4)) < 1e-6
    # Sigmoid routers: the distribution is the sigmoid scores normalised to sum to 1.
    probs, _, _, entropy = routing_from_observed(index, weights, logits, "sigmoid", True)
    s = torch.sigmoid(logits[0, 0].double())
    p = s / s.sum()
    assert torch.allclose(probs[0, 0].double(), p, atol=1e-6)
    assert abs(entropy[0, 0].item() - float(-(p * p.log()).sum())) < 1e-5
