"""Every loaded checkpoint is checked against its config: transformers fills a tensor the files lack with
random values (a config that names one layer more than the weights hold, a removed lm_head, norm or router)
and reports success, so resumed runs would mix different random weights. Its own loading report lists
missing, unexpected and mis-shaped tensors (after its renames and fusions of expert weights, so no second
mapping is kept here); any of them refuses the load, by name."""
from __future__ import annotations

from .protocol import EngineFailure

_SHOW = 6


def _names(keys) -> list[str]:
    return sorted(str(k) for k in (keys or []))


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def problems_of(info: dict) -> list[str]:
    """The loading report's problems in words; empty when every tensor of the model came from the files."""
    problems = []
    missing = _names(info.get("missing_keys"))
    if missing:
        problems.append(f"{len(missing)} tensors the config needs are not in the weight files ({_listed(missing)})")
    unexpected = _names(info.get("unexpected_keys"))
    if unexpected:
        problems.append(f"{len(unexpected)} tensors in the weight files are not part of the model the config describes ({_listed(unexpected)})")
    mismatched = []
    for m in info.get("mismatched_keys") or []:
        if isinstance(m, (tuple, list)) and len(m) == 3:
            name, have, want = m
            mismatched.append(f"{name} is {list(have)} in the files, the config needs {list(want)}")
        else:
            mismatched.append(str(m))
    if mismatched:
        problems.append(f"{len(mismatched)} tensors have the wrong shape ({_listed(sorted(mismatched))})")
    errors = [str(e).strip().splitlines()[0] for e in (info.get("error_msgs") or []) if str(e).strip()]
    errors += [f"{k}: {v}" for k, v in (info.get("conversion_errors") or {}).items()]
    if errors:
        problems.append(f"loading errors ({_listed(errors)})")
    return problems


def check_loading_info(model_dir: str, info: dict) -> None:
    """Raises EngineFailure('bad-model') naming the tensors when the weights do not match the config."""
    problems = problems_of(info)
    if problems:
        raise EngineFailure(
            "bad-model",
            f"{model_dir}: the weights do not match config.json: {'; '.join(problems)}. "
            "transformers would fill these with random values; refusing to load a model that is not the checkpoint's",
        )
