"""moe_scope_worker.interventions: bad interventions are refused with the field and the problem (what they do in
each routing kind: test_interventions_families.py)."""
import json
import pathlib

import pytest
from moe_scope_worker.interventions import validate
from moe_scope_worker.protocol import EngineFailure

E, K = 6, 2


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
