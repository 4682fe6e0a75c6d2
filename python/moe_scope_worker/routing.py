"""Router logits -> what the MoE layer did with them, the same definition as src/engines/onnxruntime/routing.ts:
softmax over all experts, the k largest (ties to the lower expert id), the weights actually applied
(raw softmax values, or rescaled to sum to 1 when the family renormalises), and gate entropy in nats."""
from __future__ import annotations

import torch


def routing_from_logits(logits: torch.Tensor, top_k: int, norm_topk_prob: bool, want_probs: bool):
    """logits: [layers, tokens, experts] on any device. Returns float32/int tensors on the same device:
    probs [L,T,E] (or None), top_experts [L,T,K] int32, top_weights [L,T,K], entropy [L,T]."""
    # float64 on the CPU keeps parity with the TypeScript engine (which works in doubles) well below 1e-6.
    work = torch.float64 if logits.device.type == "cpu" else torch.float32
    p = torch.softmax(logits.to(work), dim=-1)
    entropy = torch.special.entr(p).sum(dim=-1)
    # A stable descending sort puts equal probabilities in ascending expert order: ties go to the lower id.
    values, order = torch.sort(p, dim=-1, descending=True, stable=True)
    weights = values[..., :top_k]
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return (
        p.float() if want_probs else None,
        order[..., :top_k].to(torch.int32),
        weights.float(),
        entropy.float(),
    )


def log_softmax_at(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """Rows of [N, vocab] logits -> [N, len(ids)] log-probabilities, computed in float32 or better."""
    work = torch.float64 if logits.device.type == "cpu" else torch.float32
    return torch.log_softmax(logits.to(work), dim=-1)[:, ids].double()


def routing_from_observed(index: torch.Tensor, weights: torch.Tensor, logits: torch.Tensor, score_function: str, want_probs: bool):
    """What the MoE layers did, as capture.py read it: experts [L,T,K] and applied weights [L,T,K] exactly
    as the model used them, slots ordered by descending weight (ties: the model's own order), and the full
    distribution from the router logits [L,T,E] with the family's score function: softmax, or for sigmoid
    routers the sigmoid scores normalised to sum to 1; entropy in nats of that distribution. Returns the
    same four tensors as routing_from_logits, on the same device."""
    work = torch.float64 if logits.device.type == "cpu" else torch.float32
    if score_function == "sigmoid":
        s = torch.sigmoid(logits.to(work))
        p = s / s.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(work).tiny)
    else:
        p = torch.softmax(logits.to(work), dim=-1)
    entropy = torch.special.entr(p).sum(dim=-1)
    order = torch.sort(weights, dim=-1, descending=True, stable=True).indices
    return (
        p.float() if want_probs else None,
        index.gather(-1, order).to(torch.int32),
        weights.gather(-1, order).float(),
        entropy.float(),
    )
