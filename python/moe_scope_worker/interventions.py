"""Router interventions (expert ablation and router steering) for the PyTorch engine: per layer, values
added to the router logits before softmax and top-k; -inf removes an expert, so the probabilities
renormalise over the others. Same semantics and checks as src/analysis/interventions.ts.

transformers 5's MoE routers (OlmoeTopKRouter, MixtralTopKRouter, Qwen2MoeTopKRouter, ...) compute
logits, softmax and top-k in one forward and return (router_logits, top-k weights, top-k indices). A
forward hook on each router, registered FIRST (prepend) so that transformers' own output recorder sees
its result, recomputes all three from the changed logits: the experts run with the changed routing and
output_router_logits reports the logits actually used."""
from __future__ import annotations

import json
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


def _js(x) -> str:
    """A value as the TypeScript validator's messages print it (String(x)), so both engines say the same."""
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _is_int(x) -> bool:
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def validate(iv, num_layers: int, num_experts: int, top_k: int, source: str = "router intervention") -> None:
    """As validateIntervention in src/analysis/interventions.ts, message for message: both run the cases
    of test/support/intervention-cases.json."""
    if not isinstance(iv, dict) or not isinstance(iv.get("mask"), list) or not isinstance(iv.get("bias"), list):
        raise EngineFailure("bad-input", f"{source}: expected {{mask: [[layer, expert], ...], bias: [[layer, expert, bias], ...]}}")
    compact = lambda v: json.dumps(v, separators=(",", ":"))  # noqa: E731 - JSON.stringify's spelling
    for i, m in enumerate(iv["mask"]):
        if not isinstance(m, list) or len(m) != 2:
            raise EngineFailure("bad-input", f"{source}: mask[{i}] must be a [layer, expert] pair, got {compact(m)}")
    for i, b in enumerate(iv["bias"]):
        if not isinstance(b, list) or len(b) != 3:
            raise EngineFailure("bad-input", f"{source}: bias[{i}] must be a [layer, expert, bias] triple, got {compact(b)}")

    def check(field, layer, expert):
        if not _is_int(layer) or not 0 <= layer < num_layers:
            raise EngineFailure("bad-input", f"{source}: {field}: layer {_js(layer)} does not exist (the model has layers 0..{num_layers - 1})")
        if not _is_int(expert) or not 0 <= expert < num_experts:
            raise EngineFailure(
                "bad-input", f"{source}: {field}: expert {_js(expert)} of layer {_js(layer)} does not exist (the model has experts 0..{num_experts - 1})"
            )

    masked = [set() for _ in range(num_layers)]
    for layer, expert in iv["mask"]:
        check("mask", layer, expert)
        masked[int(layer)].add(int(expert))
    for layer, expert, bias in iv["bias"]:
        check("bias", layer, expert)
        if not isinstance(bias, (int, float)) or isinstance(bias, bool) or not math.isfinite(bias):
            raise EngineFailure("bad-input", f"{source}: bias: layer {_js(layer)}, expert {_js(expert)}: bias must be a finite number, got {_js(bias)}")
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
