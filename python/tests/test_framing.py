import io
import struct

import numpy as np
import pytest

from moe_scope_worker import framing


def test_round_trip_keeps_dtypes_views_and_alignment():
    shared = np.arange(7, dtype=np.float32)
    msg = {"a": np.array([3, 4], dtype=np.uint16), "v": framing.View(shared, 2, 3), "w": framing.View(shared, 0, 1), "s": "x\u00e9", "l": [1, None]}
    frame = framing.encode(msg)
    (n,) = struct.unpack_from("<I", frame, 0)
    assert n == len(frame) - 4
    (hlen,) = struct.unpack_from("<I", frame, 4)
    header = __import__("json").loads(frame[8 : 8 + hlen])
    assert all(off % 8 == 0 for _, off, _ in header["b"]), "every buffer starts 8-aligned"
    assert len(header["b"]) == 2, "a shared array is sent once for all its views"
    back = framing.read_frame(io.BytesIO(frame))
    assert back["a"].dtype == np.uint16 and back["a"].tolist() == [3, 4]
    assert back["v"].tolist() == [2.0, 3.0, 4.0] and back["w"].tolist() == [0.0]
    assert back["s"] == "x\u00e9" and back["l"] == [1, None]


def test_non_finite_numbers_are_refused_not_sent_as_invalid_json():
    with pytest.raises(ValueError, match="non-finite"):
        framing.encode({"x": float("nan")})


def test_unsupported_dtype_is_named():
    with pytest.raises(TypeError, match="int64"):
        framing.encode({"x": np.array([1], dtype=np.int64)})


def test_end_of_input_and_torn_frames():
    assert framing.read_frame(io.BytesIO(b"")) is None
    frame = framing.encode({"type": "cancel", "id": 1})
    with pytest.raises(EOFError):
        framing.read_frame(io.BytesIO(frame[:-3]))


def test_the_worker_writes_its_hello_before_anything_else_on_the_frame_stream():
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "moe_scope_worker"],
        cwd=here,
        env={**os.environ, "PYTHONPATH": here},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = proc.stdout.read(len(framing.WORKER_HELLO))
    finally:
        proc.kill()
        proc.wait()
    assert first == framing.WORKER_HELLO


def test_frames_stay_below_the_hosts_one_gib_cap():
    assert framing.MAX_FRAME <= 1 << 30


def test_a_python_without_the_requirements_gets_one_line_with_the_install_hint(tmp_path):
    import os
    import subprocess
    import sys

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # A numpy that cannot be imported stands in for a Python without the worker's requirements.
    (tmp_path / "numpy.py").write_text("raise ImportError('no numpy here', name='numpy')\n")
    r = subprocess.run(
        [sys.executable, "-m", "moe_scope_worker"],
        cwd=here,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{here}"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    assert r.returncode == 3
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "lacks numpy" in lines[0] and "pip install -r python/requirements.txt" in lines[0], lines
    assert r.stdout == b""
