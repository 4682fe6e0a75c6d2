"""config.json fields both engines read, checked by the one table src/shared/configFields.ts generates into
protocol_names.json: each field's type and the other names transformers maps onto it, per family. The same
loop and the same messages as configFieldsProblem there, run on the raw config.json before transformers
reads it, so a non-boolean norm_topk_prob or two names for the expert count that disagree are refused by
name in both engines. The defaults in the table are transformers' own, which is where this engine takes
them from (python/tests/test_config_fields.py holds the two equal)."""
from __future__ import annotations

import json
import math

from .protocol import NAMES, EngineFailure

TYPES: dict[str, str] = NAMES["configFields"]["types"]
DEFAULTS: dict[str, dict] = NAMES["configFields"]["defaults"]
ALIASES: dict[str, dict[str, list[str]]] = NAMES["configFields"]["aliases"]

_WANTED = {"boolean": "true or false", "positive-integer": "a positive integer", "non-negative-integer": "an integer >= 0",
           "positive-number": "a finite number > 0"}


def as_json(v) -> str:
    """A value as JSON.stringify writes it (1.0 as 1), so both engines' messages read the same."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def value_problem(kind: str, key: str, v) -> str | None:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "boolean":
        ok = isinstance(v, bool)
    elif kind == "positive-number":
        ok = number and math.isfinite(v) and v > 0
    else:
        ok = number and math.isfinite(v) and float(v).is_integer() and (v > 0 if kind == "positive-integer" else v >= 0)
    return None if ok else f'"{key}" must be {_WANTED[kind]}, got {as_json(v)}'


def field_names(family: str, field: str) -> list[str]:
    return [field, *ALIASES.get(field, {}).get(family, [])]


def fields_problem(config: dict, family: str) -> str | None:
    for field, kind in TYPES.items():
        if family not in DEFAULTS.get(field, {}) and family not in ALIASES.get(field, {}):
            continue
        names = [n for n in field_names(family, field) if config.get(n) is not None]
        for n in names:
            problem = value_problem(kind, n, config[n])
            if problem:
                return problem
        for n in names[1:]:
            if config[n] != config[names[0]]:
                return f'"{names[0]}" ({as_json(config[names[0]])}) and "{n}" ({as_json(config[n])}) disagree'
    return None


def check(config: dict, family: str, file: str) -> None:
    problem = fields_problem(config, family)
    if problem:
        raise EngineFailure("bad-model", f"{file}: {problem}")
