"""Reading the routing a transformers MoE model used, and changing it where the family chooses.

What each MoE layer did is read, never re-derived: transformers 5 calls each layer's experts module as
`experts(hidden_states, top_k_index, top_k_weights)`, and a forward pre-hook there sees exactly the experts
and weights the model applied (routed scaling factors included). JetMoE's gating hands its experts a sorted
dispatch instead (read back from that dispatch), and Llama 4's router hands them sigmoid-scaled inputs
(read from its own top-k and scores). The router logits, for the full distribution and entropy, are the
output of the router's linear projection, read inside the router's forward.

Interventions go in at the same two places, so that the family's own code then chooses: a per-expert
offset on the router logits (-inf for a masked expert, the steering bias for softmax families) and, for
families that choose with a correction bias (DeepSeek-V3 style, ERNIE, LongCat, LFM2, AFMoE), the same
offsets on that bias for the duration of the forward (a masked expert's choosing score becomes -inf, so
neither groups nor biases can bring it back)."""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from .protocol import EngineFailure

CHOICE_BIAS_NAMES = ("e_score_correction_bias", "expert_bias")
# Experts modules called with (hidden_states, top_k_index, top_k_weights); Llama 4's takes routed inputs only.
OTHER_CALL_EXPERTS = ("Llama4TextExperts",)


def find_decoder_layers(model) -> list:
    """The decoder's ModuleList of layers (layers, or blocks in DBRX), vision towers excluded."""
    best = None
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "blocks") and not any(w in name for w in ("vision", "visual", "audio")):
            if best is None or len(m) > len(best):
                best = m
    if best is None:
        raise EngineFailure("bad-model", f"{type(model).__name__}: no decoder layer list (layers/blocks) was found")
    return list(best)


def _router_of(block):
    for name in ("gate", "router"):
        r = getattr(block, name, None)
        if isinstance(r, torch.nn.Module):
            return r
    return None


def find_moe_block(layer, family: str):
    """(block, router, experts or None) of a decoder layer, or None for a dense or other layer."""
    if family == "jetmoe":
        block = getattr(layer, "mlp", None)
        return (block, block.router, None) if block is not None and hasattr(block, "router") else None
    if family == "llama4":
        block = getattr(layer, "feed_forward", None)
        return (block, block.router, None) if block is not None and hasattr(block, "router") else None
    found = []
    for name, m in layer.named_modules():
        if name.rsplit(".", 1)[-1] == "experts" and type(m).__name__ not in OTHER_CALL_EXPERTS:
            parent = layer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else layer
            router = _router_of(parent)
            if router is not None:
                found.append((parent, router, m))
    if len(found) > 1:
        raise EngineFailure("bad-model", f"{type(layer).__name__}: {len(found)} MoE blocks in one decoder layer; one per layer is supported")
    return found[0] if found else None


def _router_weight(router) -> torch.Tensor:
    """The [experts, hidden] projection of a router (its own weight, or that of its one linear layer)."""
    w = getattr(router, "weight", None)
    if isinstance(w, torch.Tensor) and w.dim() == 2:
        return w
    two_d = [p for p in router.parameters() if p.dim() == 2]
    if len(two_d) != 1:
        raise EngineFailure("bad-model", f"{type(router).__name__}: expected one [experts, hidden] projection, found {len(two_d)}")
    return two_d[0]


def _choice_bias(block, router, family: str, config):
    if family == "lfm2_moe" and not getattr(config, "use_expert_bias", True):
        return None
    for owner in (router, block):
        for name, t in list(owner.named_buffers()) + list(owner.named_parameters()):
            if name.rsplit(".", 1)[-1] in CHOICE_BIAS_NAMES:
                return t
    return None


class _RouterMode(TorchFunctionMode):
    """Active only inside one router's forward: offsets and records its logits (the linear whose weight is
    the router's [experts, hidden] projection) and records its first top-k (Llama 4's choice)."""

    def __init__(self, row):
        super().__init__()
        self.row = row

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        row = self.row
        if func is torch.nn.functional.linear and len(args) > 1 and tuple(args[1].shape) == row.weight_shape and row.logits is None:
            offset = row.owner.offsets
            if offset is not None:
                out = out + offset[row.index].to(device=out.device, dtype=out.dtype)
            row.logits = out
        elif func in (torch.topk, torch.Tensor.topk) and row.topk is None:
            row.topk = out
        return out


class _Row:
    def __init__(self, owner, index, decoder_layer, block, router, experts, choice_bias):
        self.owner, self.index, self.decoder_layer = owner, index, decoder_layer
        self.block, self.router, self.experts = block, router, experts
        self.weight_shape = tuple(_router_weight(router).shape)
        self.choice_bias = choice_bias
        self.choice_bias_original = None if choice_bias is None else choice_bias.detach().clone()
        self.clear()

    def clear(self):
        self.logits = self.topk = self.index_seen = self.weights_seen = None


class RoutingCapture:
    def __init__(self, model, family: str, config, description: dict):
        self.family = family
        self.description = description
        self.decoder_layers = find_decoder_layers(model)
        self.offsets: torch.Tensor | None = None
        self.rows: list[_Row] = []
        for i, layer in enumerate(self.decoder_layers):
            found = find_moe_block(layer, family)
            if found is None:
                continue
            block, router, experts = found
            row = _Row(self, len(self.rows), i, block, router, experts, _choice_bias(block, router, family, config))
            self.rows.append(row)
            self._install(row)
        if not self.rows:
            raise EngineFailure("bad-model", f"{type(model).__name__}: no MoE layer was found (no experts module with a router in any decoder layer)")

    @property
    def moe_layers(self) -> list[int]:
        return [r.decoder_layer for r in self.rows]

    def _install(self, row: _Row) -> None:
        router = row.router
        inner = router.forward

        def forward(*args, **kwargs):
            with _RouterMode(row):
                return inner(*args, **kwargs)

        router.forward = forward
        if self.family == "jetmoe":
            router.register_forward_hook(lambda _m, _a, out: self._read_jetmoe(row, out))
        elif self.family == "llama4":
            router.register_forward_hook(lambda _m, _a, out: self._read_llama4(row, out))
        else:
            row.experts.register_forward_pre_hook(lambda _m, args, kwargs: self._read_experts_call(row, args, kwargs), with_kwargs=True)

    # -- what the experts received --------------------------------------------------------------
    @staticmethod
    def _read_experts_call(row: _Row, args, kwargs) -> None:
        values = list(args[1:3])
        for name in ("top_k_index", "router_indices", "top_k_weights", "routing_weights"):
            if name in kwargs:
                values.append(kwargs[name])
        if len(values) < 2:
            raise EngineFailure("internal", f"{type(row.experts).__name__} was called without (top_k_index, top_k_weights): unsupported transformers version")
        index, weights = values[0], values[1]
        row.index_seen, row.weights_seen = index.reshape(-1, index.shape[-1]), weights.reshape(-1, index.shape[-1])

    @staticmethod
    def _read_jetmoe(row: _Row, out) -> None:
        index_sorted, _batch_index, batch_gates, expert_size, logits = out
        k = row.router.top_k
        counts = torch.as_tensor(expert_size, device=index_sorted.device)
        expert_sorted = torch.repeat_interleave(torch.arange(len(expert_size), device=index_sorted.device), counts)
        flat_index = torch.empty_like(index_sorted)
        flat_index[index_sorted] = expert_sorted
        flat_weights = torch.empty_like(batch_gates)
        flat_weights[index_sorted] = batch_gates
        row.index_seen, row.weights_seen = flat_index.view(-1, k), flat_weights.view(-1, k)

    @staticmethod
    def _read_llama4(row: _Row, out) -> None:
        scores, _logits = out
        if row.topk is None:
            raise EngineFailure("internal", "Llama4Router chose without torch.topk: unsupported transformers version")
        index = row.topk[1]
        row.index_seen, row.weights_seen = index, scores.gather(1, index)

    # -- one forward --------------------------------------------------------------------------
    def begin(self) -> None:
        for r in self.rows:
            r.clear()

    def end(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(experts [L,N,K] int64, applied weights [L,N,K] float32, router logits [L,N,E] float32) on the device."""
        missing = [r.decoder_layer for r in self.rows if r.index_seen is None or r.logits is None]
        if missing:
            raise EngineFailure("internal", f"the routing of decoder layer(s) {missing} was not observed in this forward; refusing to report routing")
        index = torch.stack([r.index_seen for r in self.rows])
        weights = torch.stack([r.weights_seen.float() for r in self.rows])
        logits = torch.stack([r.logits.float().reshape(index.shape[1], -1) for r in self.rows])
        for r in self.rows:
            r.clear()
        if self.masked is not None:
            hit = self.masked.to(index.device).gather(1, index.reshape(len(self.rows), -1))
            if bool(hit.any()):
                row = int(hit.any(dim=1).nonzero()[0, 0])
                raise EngineFailure("bad-input", f"router intervention: decoder layer {self.rows[row].decoder_layer} still chose a masked expert "
                                    "(too few unmasked experts in the groups the router may choose from); mask fewer experts there")
        return index, weights, logits

    # -- interventions ------------------------------------------------------------------------
    masked: torch.Tensor | None = None

    def set_offsets(self, logit_offsets: torch.Tensor | None, choice_offsets: torch.Tensor | None, masked: torch.Tensor | None) -> None:
        """Per routing row: offsets on the router logits, offsets on the choosing bias (families that have
        one), and which experts are masked (checked after every forward). None clears."""
        self.offsets = logit_offsets
        self.masked = masked
        with torch.no_grad():
            for r in self.rows:
                if r.choice_bias is None:
                    continue
                base = r.choice_bias_original.to(r.choice_bias.device)
                if choice_offsets is None:
                    r.choice_bias.copy_(base)
                else:
                    r.choice_bias.copy_(base + choice_offsets[r.index].to(device=base.device, dtype=base.dtype).reshape(base.shape))

    def has_choice_bias(self) -> bool:
        return any(r.choice_bias is not None for r in self.rows)
