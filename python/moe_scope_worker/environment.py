"""What `moeScope.engine: auto` and "MoE: Check inference environment" need to know about a Python:
versions, devices and memory. Prints one JSON object; never fails (problems are fields)."""
from __future__ import annotations

import json
import platform
import sys


def probe() -> dict:
    info: dict = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform()}
    problems = []
    if sys.version_info < (3, 10):
        problems.append(f"Python {sys.version.split()[0]} is older than 3.10, which the PyTorch worker needs")
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        devices = []
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                devices.append({"type": "cuda", "index": i, "name": torch.cuda.get_device_name(i), "freeBytes": free, "totalBytes": total})
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            devices.append({"type": "mps", "name": "Apple GPU (MPS)"})
        info["devices"] = devices
    except Exception as e:
        problems.append(f"torch: {e}")
    for mod in ("transformers", "tokenizers", "safetensors", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as e:
            problems.append(f"{mod}: {e}")
    if any(p.split(":")[0] in ("torch", "transformers", "tokenizers", "safetensors", "numpy") for p in problems):
        problems.append("install the worker's requirements into this Python: pip install -r python/requirements.txt")
    info["problems"] = problems
    info["usable"] = not problems
    info["gpu"] = bool(info.get("devices"))
    return info


def main() -> None:
    print(json.dumps(probe()))
