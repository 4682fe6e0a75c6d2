"""The 30 MoE decoder families transformers implements, as the PyTorch engine describes them: routing kind,
score function, shared experts, routed scaling factor, and the config fields that change routing. The routing
itself is never computed from these: capture.py reads what each layer's experts received (see
../../../shared/notes/families.md). Names and kinds are src/shared/protocol.ts's MOE_FAMILIES and RoutingKind."""
from __future__ import annotations

from .protocol import FAMILIES, EngineFailure

# model_type -> family, where a family's text model has its own model_type.
MODEL_TYPES = {**{f: f for f in FAMILIES}, "llama4_text": "llama4", "qwen3_5_moe_text": "qwen3_5_moe"}

SIGMOID_BIAS_GROUP = ("deepseek_v3", "glm4_moe", "dots1", "exaone_moe", "mimo_v2_flash", "kimi_linear", "lfm2_moe", "afmoe")
RENORMALISED = ("mixtral", "minimax", "hunyuan_v1_moe", "qwen3_next", "qwen3_5_moe", "dbrx", "gpt_oss", "granitemoe", "granitemoeshared",
                "granitemoehybrid", "jetmoe", "cohere2_moe")
# Families whose experts are chosen by top-k of raw logits (the weights are a softmax or sigmoid over the k).
TOPK_OF_LOGITS = ("gpt_oss", "granitemoe", "granitemoeshared", "granitemoehybrid", "jetmoe", "cohere2_moe", "llama4")


def _get(config, *names, default=None):
    for n in names:
        v = getattr(config, n, None)
        if v is not None:
            return v
    return default


def routing_kind(family: str, config) -> str:
    if family in SIGMOID_BIAS_GROUP:
        return "sigmoid-bias-group"
    if family in ("ernie4_5_moe", "longcat_flash"):
        return "softmax-bias-choice"
    if family == "deepseek_v2":
        return "softmax-group-scaled"
    if family == "llama4":
        return "topk-sigmoid-input"
    if family == "phimoe":
        return "sparsemixer"
    if family == "dbrx":
        return "softmax-topk" if _dbrx_norm(config) is None else "softmax-topk-renorm"
    if family in RENORMALISED:
        return "softmax-topk-renorm"
    return "softmax-topk-renorm" if _get(config, "norm_topk_prob") is True else "softmax-topk"


def score_function(family: str, config) -> str:
    if family in SIGMOID_BIAS_GROUP or family == "llama4":
        return "sigmoid"
    if family == "cohere2_moe" and _get(config, "expert_selection_fn") == "sigmoid":
        return "sigmoid"
    return "softmax"


def routed_scaling_factor(family: str, config) -> float:
    if family == "afmoe":
        return float(_get(config, "route_scale", default=1.0))
    if family in SIGMOID_BIAS_GROUP or family in ("deepseek_v2", "longcat_flash"):
        return float(_get(config, "routed_scaling_factor", default=1.0))
    return 1.0


def shared_experts(family: str, config) -> int:
    if family in ("qwen2_moe", "qwen3_next", "qwen3_5_moe"):
        return 1 if (_get(config, "shared_expert_intermediate_size", default=0) or 0) > 0 else 0
    if family in ("granitemoeshared", "granitemoehybrid"):
        return 1 if (_get(config, "shared_intermediate_size", default=0) or 0) > 0 else 0
    if family == "llama4":
        return 1
    if family == "hunyuan_v1_moe":
        return 1  # HunYuanMoEV1Moe always adds its shared_mlp
    if family == "cohere2_moe":
        return int(_get(config, "num_shared_experts", default=0) or 0)
    return int(_get(config, "n_shared_experts", "num_shared_experts", "moe_num_shared_experts", default=0) or 0)


def applied_weight(family: str, kind: str, score: str, scale: float, config) -> str:
    scaled = f" x routed scaling factor {scale:g}" if scale != 1 else ""
    if kind == "sigmoid-bias-group":
        renorm = family == "afmoe" or _get(config, "norm_topk_prob", "moe_renormalize") is not False
        return f"sigmoid score{', renormalised over the top-k' if renorm else ''}{scaled} (the correction bias only chooses)"
    if kind == "softmax-bias-choice":
        if family == "longcat_flash":
            return f"softmax probability{scaled}; identity (zero) experts pass the token through (the correction bias only chooses)"
        return "softmax probability, renormalised over the top-k (the correction bias only chooses)"
    if kind == "softmax-group-scaled":
        return f"softmax probability{scaled}"
    if kind == "topk-sigmoid-input":
        return "sigmoid of the chosen logit, multiplied into the expert's input"
    if kind == "sparsemixer":
        return "sparsemixer: each of the two choices' softmax over the logits within its threshold"
    if family in TOPK_OF_LOGITS:
        what = "sigmoid of the top-k logits" if score == "sigmoid" else "softmax over the top-k logits"
        if score == "sigmoid" and _get(config, "norm_topk_prob"):
            what += ", renormalised"
        return what
    if family == "dbrx":
        p = _dbrx_norm(config)
        return f"softmax probability, divided by the top-k's {p:g}-norm" if p is not None else "softmax probability"
    return "softmax probability, renormalised over the top-k" if kind == "softmax-topk-renorm" else "softmax probability"


def _dbrx_norm(config):
    """DBRX's p of the p-norm the top-k weights are divided by; None: not divided (DbrxRouter)."""
    return _get(config.ffn_config if hasattr(config, "ffn_config") else config, "moe_normalize_expert_weights")


def rescales_to_one(family: str, config, routing: dict) -> bool:
    """ModelInfo.normTopKProb: whether the k chosen weights are rescaled to sum to 1 (rescalesToOne in
    src/engines/onnxruntime/familyFeatures.ts is the ONNX Runtime engine's)."""
    kind = routing["kind"]
    if family == "dbrx":
        return _dbrx_norm(config) == 1
    if kind == "sigmoid-bias-group":
        return "renormalised" in routing["appliedWeight"]
    return kind in ("softmax-topk-renorm", "softmax-bias-choice") and family != "longcat_flash"


def logits_scale(family: str, config) -> float:
    """The factor transformers' causal-LM head applies to the output logits after lm_head."""
    if family in ("granitemoe", "granitemoeshared", "granitemoehybrid"):
        return 1.0 / float(_get(config, "logits_scaling", default=1.0))
    if family == "cohere2_moe":
        return float(_get(config, "logit_scale", default=1.0))
    return 1.0


def check_routing_fields(family: str, config, file: str) -> None:
    """Config fields that change routing in ways this engine cannot report exactly are refused by name."""
    if family == "deepseek_v2":
        method = _get(config, "topk_method")
        if method not in ("greedy", "group_limited_greedy"):
            raise EngineFailure("bad-model", f"{file}: topk_method {method!r} is not one transformers' DeepSeek-V2 router implements "
                                "(greedy, group_limited_greedy); refusing rather than reporting routing it did not do")
    if family == "cohere2_moe" and _get(config, "expert_selection_fn") not in ("softmax", "sigmoid"):
        raise EngineFailure("bad-model", f"{file}: expert_selection_fn {_get(config, 'expert_selection_fn')!r} must be softmax or sigmoid")
    if family == "hunyuan_v1_moe" and (isinstance(_get(config, "num_experts"), list) or isinstance(_get(config, "moe_topk"), list)):
        raise EngineFailure("bad-model", f"{file}: num_experts / moe_topk vary per layer; the PyTorch engine shows one expert count and top-k per model")


def describe(family: str, config) -> dict:
    kind = routing_kind(family, config)
    score = score_function(family, config)
    scale = routed_scaling_factor(family, config)
    return {
        "kind": kind,
        "scoreFunction": score,
        "routedScalingFactor": scale,
        "zeroExperts": int(_get(config, "zero_expert_num", default=0) or 0) if family == "longcat_flash" else 0,
        "appliedWeight": applied_weight(family, kind, score, scale, config),
    }


def family_of(model_type, file: str) -> str:
    family = MODEL_TYPES.get(model_type)
    if family is None:
        raise EngineFailure(
            "bad-model",
            f"{file}: model_type {model_type!r} is not an MoE family the PyTorch engine runs (supported: {', '.join(FAMILIES)}); "
            "the ONNX Runtime engine (moeScope.engine: onnxruntime) runs some families of its own, see the README's family table",
        )
    return family
