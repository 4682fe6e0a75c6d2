"""Length-prefixed frames carrying one JSON message plus raw typed-array buffers.

Frame  = u32le body_length, body
Body   = u32le header_length, header (UTF-8 JSON), zero padding to a multiple of 8, binary section
Header = {"m": message, "b": [[dtype, byte_offset, byte_length], ...]}
Inside the message a typed array is {"$b": buffer_index} or, for a view into a shared buffer,
{"$b": buffer_index, "o": element_offset, "n": element_count}. Every buffer starts at a multiple of 8
in the binary section, so the TypeScript side views the bytes as typed arrays without copying them or
going through JSON numbers. Little-endian throughout.
"""
from __future__ import annotations

import json
import math
import struct
from typing import Any, BinaryIO

import numpy as np

DTYPES = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int32": np.dtype("<i4"),
    "uint16": np.dtype("<u2"),
    "uint8": np.dtype("u1"),
}
_NAMES = {v: k for k, v in DTYPES.items()}
# Must stay below the host's frame cap (frames.ts MAX_FRAME_BYTES).
MAX_FRAME = 1 << 30
# Written once, before anything else, on the frame stream: the host refuses a stream that starts otherwise
# (text a wrapper script printed first) instead of reading it as a frame length (frames.ts WORKER_HELLO).
WORKER_HELLO = b"\0MOE-SCOPE-WORKER/1\n"


class View:
    """A run of elements of a shared array, sent once per frame and referenced by every view."""

    __slots__ = ("array", "offset", "count")

    def __init__(self, array: np.ndarray, offset: int, count: int):
        self.array, self.offset, self.count = array, offset, count


class NonFiniteNumber(ValueError):
    """A NaN or infinity in a message: JSON cannot carry it, and the host would read it as a result."""


def _align8(n: int) -> int:
    return (n + 7) & ~7


def encode(message: Any) -> bytes:
    buffers: list[np.ndarray] = []
    index: dict[int, int] = {}

    def buffer_index(a: np.ndarray) -> int:
        key = id(a)
        if key not in index:
            if a.dtype not in _NAMES:
                raise TypeError(f"cannot frame arrays of dtype {a.dtype}")
            index[key] = len(buffers)
            buffers.append(np.ascontiguousarray(a).reshape(-1))
        return index[key]

    def walk(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return {"$b": buffer_index(x)}
        if isinstance(x, View):
            return {"$b": buffer_index(x.array), "o": int(x.offset), "n": int(x.count)}
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            raise NonFiniteNumber(f"non-finite number {x} in a message")
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        return x

    body = walk(message)
    table = []
    offset = 0
    for b in buffers:
        table.append([_NAMES[b.dtype], offset, b.nbytes])
        offset = _align8(offset + b.nbytes)
    header = json.dumps({"m": body, "b": table}, separators=(",", ":"), allow_nan=False).encode("utf-8")
    start = _align8(4 + len(header))
    total = start + offset
    if total >= MAX_FRAME:
        raise ValueError(f"a {total}-byte frame exceeds the 1 GiB frame limit")
    out = bytearray(4 + total)
    struct.pack_into("<II", out, 0, total, len(header))
    out[8 : 8 + len(header)] = header
    for (_, off, n), b in zip(table, buffers):
        pos = 4 + start + off
        out[pos : pos + n] = b.tobytes()
    return bytes(out)


def decode_body(body: bytes) -> Any:
    (hlen,) = struct.unpack_from("<I", body, 0)
    header = json.loads(body[4 : 4 + hlen].decode("utf-8"))
    start = _align8(4 + hlen)
    arrays = [np.frombuffer(body, dtype=DTYPES[d], count=n // DTYPES[d].itemsize, offset=start + off) for d, off, n in header["b"]]

    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "$b" in x:
                a = arrays[x["$b"]]
                return a[x["o"] : x["o"] + x["n"]] if "o" in x else a
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(header["m"])


def read_frame(stream: BinaryIO) -> Any | None:
    """The next message, or None at end of input. A torn frame raises."""
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = _read_exact(stream, n)
    if body is None:
        raise EOFError(f"input ended inside a {n}-byte frame")
    return decode_body(body)


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks = []
    got = 0
    while got < n:
        c = stream.read(n - got)
        if not c:
            if got == 0:
                return None
            raise EOFError(f"input ended after {got} of {n} bytes")
        chunks.append(c)
        got += len(c)
    return b"".join(chunks)
