"""Router interventions (expert ablation and router steering) for the PyTorch engine: per layer, values
added to the router logits before softmax and top-k; -inf removes an expert, so the probabilities
renormalise over the others. Same semantics and checks as src/analysis/interventions.ts.

transformers 5's MoE routers (OlmoeTopKRouter, MixtralTopKRouter, Qwen2MoeTopKRouter, ...) compute
logits, softmax and top-k in one forward and return (router_logits, top-k weights, top-k indices). A
forward hook on each router, registered FIRST (prepend) so that transformers' own output recorder sees
its result, recomputes all three from the changed logits: the experts run with the changed routing and
output_router_logits reports the logits actually used."""
from __future__ import annotations

import math

import torch

from .protocol import EngineFailure


def find_router(layer):
    """The router of a decoder layer (mlp.gate, or block_sparse_moe.gate in older Mixtral code); None
    for a dense layer."""
    for block_name in ("mlp", "block_sparse_moe"):
        router = getattr(getattr(layer, block_name, None), "gate", None)
        if router is not None and isinstance(getattr(router, "weight", None), torch.Tensor) and hasattr(router, "top_k"):
            return router
    return None


def validate(iv, num_layers: int, num_experts: int, top_k: int, source: str = "router intervention") -> None:
    if not isinstance(iv, dict) or not isinstance(iv.get("mask", []), list) or not isinstance(iv.get("bias", []), list):
        raise EngineFailure("bad-input", f"{source}: expected {{mask: [[layer, expert], ...], bias: [[layer, expert, bias], ...]}}")

    def check(field, i, entry, n):
        if not isinstance(entry, list) or len(entry) != n:
            raise EngineFailure("bad-input", f"{source}: {field}[{i}] must be a list of {n} numbers, got {entry!r}")
        layer, expert = entry[0], entry[1]
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < num_layers:
            raise EngineFailure("bad-input", f"{source}: {field}: layer {layer} does not exist (the model has layers 0..{num_layers - 1})")
        if not isinstance(expert, int) or isinstance(expert, bool) or not 0 <= expert < num_experts:
            raise EngineFailure("bad-input", f"{source}: {field}: expert {expert} of layer {layer} does not exist (the model has experts 0..{num_experts - 1})")

    masked = [set() for _ in range(num_layers)]
    for i, m in enumerate(iv.get("mask", [])):
        check("mask", i, m, 2)
        masked[m[0]].add(m[1])
    for i, b in enumerate(iv.get("bias", [])):
        check("bias", i, b, 3)
        if not isinstance(b[2], (int, float)) or isinstance(b[2], bool) or not math.isfinite(b[2]):
            raise EngineFailure("bad-input", f"{source}: bias: layer {b[0]}, expert {b[1]}: bias must be a finite number, got {b[2]!r}")
    for layer, gone in enumerate(masked):
        if num_experts - len(gone) < top_k:
            raise EngineFailure(
                "bad-input",
                f"{source}: layer {layer} would keep {num_experts - len(gone)} of {num_experts} experts, fewer than the {top_k} the router chooses per token; "
                f"refusing to mask {'every expert of a layer' if len(gone) == num_experts else 'that many'}",
            )


class RouterInterventions:
    def __init__(self, layers, rule: dict):
        self.num_layers, self.num_experts = rule["numLayers"], rule["numExperts"]
        self.top_k, self.norm = rule["topK"], rule["normTopKProb"]
        self.offsets: torch.Tensor | None = None
        self.key = ""
        hooked = 0
        for i, layer in enumerate(layers):
            router = find_router(layer)
            if router is not None:
                router.register_forward_hook(self._hook(i), prepend=True)
                hooked += 1
        self.hooked = hooked

    def _hook(self, layer: int):
        def hook(_module, _args, output):
            if self.offsets is None:
                return None
            if not isinstance(output, tuple) or len(output) != 3:
                raise EngineFailure("internal", f"router of layer {layer} returned {type(output).__name__}, not (logits, weights, indices): unsupported transformers version for interventions")
            logits = output[0] + self.offsets[layer].to(device=output[0].device, dtype=output[0].dtype)
            probs = torch.softmax(logits.float(), dim=-1)
            top, idx = torch.topk(probs, self.top_k, dim=-1)
            if self.norm:
                top = top / top.sum(dim=-1, keepdim=True)
            return logits, top.to(output[1].dtype), idx

        return hook

    @staticmethod
    def key_of(iv) -> str:
        if not iv or (not iv.get("mask") and not iv.get("bias")):
            return ""
        return repr((iv.get("mask"), iv.get("bias")))

    def set(self, iv) -> str:
        """Applies `iv` (None or empty: none) to every following forward pass; returns its key."""
        key = self.key_of(iv)
        if key == self.key:
            return key
        if not key:
            self.offsets, self.key = None, ""
            return key
        validate(iv, self.num_layers, self.num_experts, self.top_k)
        if self.hooked == 0:
            raise EngineFailure("bad-input", "router intervention: no router module was found to hook in this model")
        off = torch.zeros((self.num_layers, self.num_experts), dtype=torch.float32)
        for layer, expert, bias in iv.get("bias", []):
            off[layer, expert] += bias
        for layer, expert in iv.get("mask", []):
            off[layer, expert] = float("-inf")
        self.offsets, self.key = off, key
        return key
