"""The PyTorch engine's half of the config parity test (test/unit/config-parity.test.ts is the ONNX Runtime
engine's): every case of test/support/config-cases.json goes through the engine's own path (config_fields
check, transformers' AutoConfig, routing_rule) and gives the ModelInfo values or the refusal the case names.
The defaults and aliases of src/shared/configFields.ts, which the ONNX Runtime engine reads, are held equal
to transformers' own here, since that is where this engine takes them from."""
import json
import os

import pytest

from moe_scope_worker import checkpoint, config_fields
from moe_scope_worker.protocol import EngineFailure

CASES_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "test", "support", "config-cases.json")
with open(CASES_FILE, encoding="utf-8") as f:
    DATA = json.load(f)


def model_info(tmp_path, config: dict) -> dict:
    (tmp_path / "config.json").write_text(json.dumps(config))
    raw = checkpoint.read_config(str(tmp_path))
    hf = checkpoint.load_config(str(tmp_path), raw)
    rule = checkpoint.routing_rule(hf, str(tmp_path / "config.json"))
    text = hf.get_text_config() if hasattr(hf, "get_text_config") else hf
    info = {
        "kind": rule["routing"]["kind"],
        "normTopKProb": rule["normTopKProb"],
        "sharedExperts": rule["sharedExperts"],
        "routedScalingFactor": rule["routing"]["routedScalingFactor"],
        "maxPositions": rule["maxPositions"],
    }
    # The engine counts experts and k on the loaded model; the config transformers builds it from says the same.
    for key, field in (("numExperts", "num_experts"), ("topK", "num_experts_per_tok")):
        values = [getattr(text, n, None) for n in config_fields.field_names(rule["family"], field)]
        info[key] = next((v for v in values if v is not None), None)
    return info


def test_the_case_file_is_not_empty():
    assert len(DATA["cases"]) >= 10, CASES_FILE


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_config_parity(tmp_path, case):
    config = {**DATA["bases"][case["base"]], **case["config"]}
    if "error" in case:
        with pytest.raises(EngineFailure) as info:
            model_info(tmp_path, config)
        assert info.value.code == "bad-model"
        assert str(info.value) == f"{tmp_path / 'config.json'}: {case['error']}"
        return
    got = model_info(tmp_path, config)
    for key, want in case["expect"].items():
        assert got[key] == want, f"{case['name']}: {key} is {got[key]!r}, the case says {want!r}"


def transformers_default(family: str, field: str):
    from transformers import AutoConfig

    config = AutoConfig.for_model(family)
    if family == "dbrx" and field == "max_position_embeddings":
        return config.max_seq_len
    if family == "dbrx" and field == "rms_norm_eps":  # DbrxConfig has none: its LayerNorms use torch's default
        import torch

        return torch.nn.LayerNorm(1).eps
    if field == "rope_theta" and isinstance(getattr(config, "rope_parameters", None), dict):
        return config.rope_parameters["rope_theta"]
    return getattr(config, field)


@pytest.mark.parametrize("field", sorted(config_fields.DEFAULTS))
def test_every_default_of_the_table_is_transformers_own(field):
    defaults = config_fields.DEFAULTS[field]
    assert defaults, field
    wrong = {f: (want, transformers_default(f, field)) for f, want in defaults.items() if transformers_default(f, field) != want}
    assert not wrong, f"src/shared/configFields.ts CONFIG_DEFAULTS.{field} (table, transformers): {wrong}"


@pytest.mark.parametrize("field", sorted(config_fields.ALIASES))
def test_every_alias_of_the_table_is_one_transformers_maps(field):
    from transformers import AutoConfig

    for family, aliases in config_fields.ALIASES[field].items():
        for alias in aliases:
            config = AutoConfig.for_model(family, **{alias: 3})
            assert getattr(config, field) == 3, f"{family}: transformers does not read {alias} as {field}"


def test_wrong_types_are_refused_in_the_words_of_the_typescript_table():
    assert config_fields.value_problem("boolean", "norm_topk_prob", "yes") == '"norm_topk_prob" must be true or false, got "yes"'
    assert config_fields.value_problem("positive-integer", "num_experts_per_tok", True) == '"num_experts_per_tok" must be a positive integer, got true'
    assert config_fields.value_problem("positive-integer", "max_position_embeddings", 2.0) is None
    assert config_fields.value_problem("non-negative-integer", "n_shared_experts", -1) == '"n_shared_experts" must be an integer >= 0, got -1'
    assert config_fields.value_problem("positive-number", "routed_scaling_factor", float("nan")) == '"routed_scaling_factor" must be a finite number > 0, got NaN'
