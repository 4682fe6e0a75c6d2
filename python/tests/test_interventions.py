"""moe_scope_worker.interventions: bad interventions are refused with the field and the problem (what they do in
each routing kind: test_interventions_families.py)."""
import pytest
from moe_scope_worker.interventions import validate
from moe_scope_worker.protocol import EngineFailure

E, K = 6, 2


@pytest.mark.parametrize(
    "iv, message",
    [
        ({"mask": [[2, 0]], "bias": []}, r"layer 2 does not exist"),
        ({"mask": [[0, 6]], "bias": []}, r"expert 6 of layer 0 does not exist"),
        ({"mask": [[0, 1, 2]], "bias": []}, r"mask\[0\] must be a list of 2 numbers"),
        ({"mask": [], "bias": [[0, 1, float("nan")]]}, r"bias must be a finite number"),
        ({"mask": [[0, e] for e in range(E - K + 1)], "bias": []}, r"layer 0 would keep 1 of 6 experts, fewer than the 2"),
        ({"mask": [[0, e] for e in range(E)], "bias": []}, r"every expert of a layer"),
    ],
)
def test_bad_interventions_are_refused_with_the_field_and_the_problem(iv, message):
    with pytest.raises(EngineFailure, match=message):
        validate(iv, 2, E, K)
