"""Router interventions (expert ablation and router steering) for the PyTorch engine, per routing row
(MoE layer): a masked expert is never chosen, a steering bias is added where the family chooses. The
checks are src/analysis/interventions.ts's; where the values go in is capture.py's."""
from __future__ import annotations

import json
import math

import torch

from .protocol import EngineFailure


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
    """Masks and steering biases, per routing row, applied where each family chooses (capture.py): a masked
    expert gets -inf on its router logit and, where the family chooses with a correction bias, on that bias
    too; a steering bias is added to the router logits, or for sigmoid routers that choose with a
    correction bias, to that bias (so it changes the choice and not the sigmoid weights)."""

    def __init__(self, capture, num_experts: int, top_k: int):
        self.capture = capture
        self.num_layers, self.num_experts, self.top_k = len(capture.rows), num_experts, top_k
        self.bias_on_choice = capture.description["kind"] == "sigmoid-bias-group" and capture.has_choice_bias()
        self.key = ""

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
            self.capture.set_offsets(None, None, None)
            self.key = ""
            return key
        validate(iv, self.num_layers, self.num_experts, self.top_k)
        logits = torch.zeros((self.num_layers, self.num_experts), dtype=torch.float32)
        choice = torch.zeros((self.num_layers, self.num_experts), dtype=torch.float32)
        masked = torch.zeros((self.num_layers, self.num_experts), dtype=torch.bool)
        for layer, expert, bias in iv.get("bias", []):
            (choice if self.bias_on_choice else logits)[layer, expert] += bias
        for layer, expert in iv.get("mask", []):
            logits[layer, expert] = float("-inf")
            choice[layer, expert] = float("-inf")
            masked[layer, expert] = True
        self.capture.set_offsets(logits, choice, masked if masked.any() else None)
        self.key = key
        return key
