"""Finding and sizing a checkpoint before anything is loaded: a model folder or a local Hugging Face hub
snapshot, the family's routing rule from config.json, and the memory the weights need."""
from __future__ import annotations

import json
import os
import re

from . import config_fields, families
from .protocol import EngineFailure

def resolve_model_dir(path: str) -> str:
    """A folder with config.json, or a hub cache folder (models--org--name) whose refs/main names a snapshot."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    snapshots = os.path.join(path, "snapshots")
    if os.path.isdir(snapshots):
        ref = os.path.join(path, "refs", "main")
        if os.path.isfile(ref):
            with open(ref, encoding="utf-8") as f:
                cand = os.path.join(snapshots, f.read().strip())
            if os.path.isfile(os.path.join(cand, "config.json")):
                return cand
        found = sorted(d for d in os.listdir(snapshots) if os.path.isfile(os.path.join(snapshots, d, "config.json")))
        if len(found) == 1:
            return os.path.join(snapshots, found[0])
        if found:
            raise EngineFailure("bad-model", f"{snapshots}: {len(found)} snapshots and no refs/main; pass one snapshot folder")
    if not os.path.isdir(path):
        raise EngineFailure("bad-model", f"{path}: no such folder")
    config = os.path.join(path, "config.json")
    if os.path.lexists(config):
        read_regular(config, 1)  # raises, naming what it is (a FIFO, a folder, a dangling link)
    raise EngineFailure("bad-model", f"{path}/config.json: missing (expected a Hugging Face model folder or hub snapshot)")


def read_regular(file: str, max_bytes: int) -> bytes:
    """A regular file's bytes, at most max_bytes; a FIFO, device or folder is refused at once by name
    (opened non-blocking and checked on the descriptor, as src/shared/safeFiles.ts does)."""
    fd, st = _open_regular(file)
    try:
        if st.st_size > max_bytes:
            raise EngineFailure("bad-model", f"{file}: {st.st_size} bytes, more than the {max_bytes} this file may have")
        chunks, got = [], 0
        while got < st.st_size:
            c = os.read(fd, st.st_size - got)
            if not c:
                break
            chunks.append(c)
            got += len(c)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_regular(file: str) -> tuple[int, os.stat_result]:
    """A descriptor on a regular file and its stat, opened non-blocking so that a FIFO cannot hang the open;
    anything else is refused by name. The caller closes the descriptor."""
    import stat

    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise EngineFailure("bad-model", f"{file}: {'no such file' if e.errno == 2 else f'cannot read ({e.strerror})'}") from e
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode) else "a device or special file"
        raise EngineFailure("bad-model", f"{file}: not a regular file ({kind})")
    return fd, st


def read_config(model_dir: str) -> dict:
    file = os.path.join(model_dir, "config.json")
    try:
        config = json.loads(read_regular(file, 16 << 20).decode("utf-8"))
    except (OSError, ValueError) as e:
        raise EngineFailure("bad-model", f"{file}: {e}") from e
    if not isinstance(config, dict):
        raise EngineFailure("bad-model", f"{file}: not a JSON object")
    return config


def load_config(model_dir: str, raw: dict):
    """transformers' own config object for the checkpoint (its text part for multimodal families), after the
    model_type has been checked against the families this engine runs."""
    file = os.path.join(model_dir, "config.json")
    config_fields.check(raw, families.family_of(raw.get("model_type"), file), file)
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EngineFailure("bad-model", f"{file}: transformers could not read it: {e}") from e
    return config


def routing_rule(config, file: str) -> dict:
    """The family, its routing description and the sizes the engine checks inputs against. Experts, top-k
    and MoE layers are read from the loaded model (capture.py), not from config field names."""
    family = families.family_of(getattr(config, "model_type", None), file)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    families.check_routing_fields(family, text, file)

    def integer(name: str, default=None) -> int:
        v = getattr(text, name, default)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise EngineFailure("bad-model", f"{file}: {name} must be a positive integer, got {v!r}")
        return v

    routing = families.describe(family, text)
    return {
        "family": family,
        "modelType": config.model_type,
        "routing": routing,
        "normTopKProb": families.rescales_to_one(family, text, routing),
        "sharedExperts": families.shared_experts(family, text),
        "logitsScale": families.logits_scale(family, text),
        "hiddenSize": integer("hidden_size"),
        "vocabSize": integer("vocab_size"),
        "maxPositions": integer("max_position_embeddings", 4096),
    }


def weight_elements(model_dir: str) -> int:
    """Parameter count from the safetensors headers, read and validated by the safetensors package (the data
    is mapped, never read). Each file is first opened non-blocking and checked to be a regular file, as
    read_regular does, and the package then opens that same file through /proc/self/fd where there is one."""
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    if not files:
        raise EngineFailure("bad-model", f"{model_dir}: no *.safetensors files")
    return sum(_elements_in(os.path.join(model_dir, name)) for name in files)


def _elements_in(file: str) -> int:
    from safetensors import SafetensorError, safe_open

    fd, st = _open_regular(file)
    try:
        through = f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else file
        try:
            with safe_open(through, framework="numpy") as weights:
                total = 0
                for key in weights.keys():
                    count = 1
                    for d in weights.get_slice(key).get_shape():
                        count *= d
                    total += count
                return total
        except (SafetensorError, OSError) as e:
            raise EngineFailure("bad-model", f"{file}: {_header_problem(fd, st.st_size, str(e))}") from e
    finally:
        os.close(fd)


_MAX_HEADER_BYTES = 100_000_000  # the safetensors package's own cap, as formats/safetensors.ts has it


def _header_problem(fd: int, size: int, error: str) -> str:
    """The package's complaint in the words formats/safetensors.ts uses, naming the tensor where it can: the
    package does not say which entry holds a dtype it does not know, so only then is the header read again
    (bounded by the package's own cap) to find it."""
    reason = error.removeprefix("Error while deserializing header: ")
    if reason == "header too small":
        return f"file is {size} bytes; a safetensors file starts with an 8-byte header length"
    if reason == "header too large":
        return f"header length at offset 0 exceeds the file (size {size} bytes) or the 100 MB cap: the file is truncated or not safetensors"
    unknown = re.search(r"unknown variant `([^`]*)`", reason)
    if unknown:
        dtype = unknown.group(1)
        names = _tensors_with_dtype(fd, size, dtype)
        which = f'tensor "{names[0]}": ' if names else ""
        return f"{which}unsupported dtype {json.dumps(dtype)} (safetensors header: {reason})"
    if reason == "incomplete metadata, file not fully covered":
        return f"safetensors header: the tensors' data_offsets do not cover the {size}-byte file exactly (truncated, or data beyond the last tensor)"
    if reason == "invalid shape, data type, or offset for tensor":
        return f"safetensors header: a tensor's shape, dtype and data_offsets disagree ({reason})"
    return f"unreadable safetensors header ({reason})"


def _tensors_with_dtype(fd: int, size: int, dtype: str) -> list[str]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        length = int.from_bytes(os.read(fd, 8), "little")
        if length > min(_MAX_HEADER_BYTES, size - 8):
            return []
        raw = bytearray()
        while len(raw) < length:
            chunk = os.read(fd, length - len(raw))
            if not chunk:
                return []
            raw += chunk
        header = json.loads(bytes(raw))
    except (OSError, ValueError):
        return []
    return [k for k, v in header.items() if isinstance(v, dict) and v.get("dtype") == dtype] if isinstance(header, dict) else []


def available_memory(device) -> tuple[int, str]:
    """Bytes free on the device and how that was measured."""
    import torch

    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free on {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory()) - int(torch.mps.current_allocated_memory()), "recommended for MPS"
        except AttributeError:
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in RAM"
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"), "available RAM"
