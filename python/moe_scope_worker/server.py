"""The worker's message loop. A reader thread takes frames from stdin: cancels take effect at once (the
engine checks between decoder layers), requests queue up and run one at a time in arrival order on the
main thread, which alone writes frames to stdout. End of stdin (the host went away) ends the process."""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback

from . import framing
from .protocol import METHODS, SERVED_METHODS, EngineFailure


class Server:
    def __init__(self, out_fd: int):
        self.out = os.fdopen(out_fd, "wb", buffering=0)
        self.write_lock = threading.Lock()
        self.requests: queue.Queue = queue.Queue()
        self.cancelled: set[int] = set()
        self.current: int | None = None
        from .engine import Engine  # torch import is slow; keep it after the stdout redirect

        self.engine = Engine(self.log)
        self.engine.cancel_check = lambda: self.current in self.cancelled
        # Where a benchmark's time goes inside the worker: seconds and calls per method.
        self.stats: dict[str, list[float]] = {}
        self.stats_file = os.environ.get("MOE_SCOPE_BENCH_STATS")

    def write_stats(self) -> None:
        if self.stats_file:
            import json

            with open(self.stats_file, "w") as f:
                stats = {m: {"seconds": round(v[0], 3), "calls": int(v[1])} for m, v in self.stats.items()}
                stats["forward"] = {"seconds": round(self.engine.forward_seconds, 3)}
                json.dump(stats, f)

    def send(self, message) -> None:
        frame = framing.encode(message)
        with self.write_lock:
            self.out.write(frame)

    def log(self, level: str, message: str) -> None:
        self.send({"type": "log", "level": level, "message": message})

    def read_loop(self) -> None:
        stdin = sys.stdin.buffer
        try:
            while True:
                msg = framing.read_frame(stdin)
                if msg is None:
                    break
                kind = msg.get("type") if isinstance(msg, dict) else None
                if kind == "cancel":
                    self.cancelled.add(msg.get("id"))
                elif kind == "request":
                    self.requests.put(msg)
        except Exception as e:  # a torn or malformed frame: nothing after it can be trusted
            print(f"moe_scope_worker: bad input frame: {e}", file=sys.stderr, flush=True)
        self.write_stats()
        os._exit(0)

    def serve(self) -> None:
        threading.Thread(target=self.read_loop, name="stdin", daemon=True).start()
        self.send({"type": "ready", "pid": os.getpid()})
        while True:
            req = self.requests.get()
            rid = req.get("id")
            self.current = rid
            try:
                if rid in self.cancelled:
                    raise EngineFailure("cancelled", "the request was cancelled")
                t0 = time.perf_counter()
                result = self.dispatch(req.get("method"), req.get("params") or {})
                frame = framing.encode({"type": "response", "id": rid, "ok": True, "result": result})
                s = self.stats.setdefault(str(req.get("method")), [0.0, 0])
                s[0] += time.perf_counter() - t0
                s[1] += 1
                if req.get("method") == "shutdown":
                    self.write_stats()  # before answering: the host may kill the process on the answer
                with self.write_lock:
                    self.out.write(frame)
                if req.get("method") == "shutdown":
                    os._exit(0)
            except Exception as e:
                self.send({"type": "response", "id": rid, "ok": False, "error": error_of(e)})
            finally:
                self.current = None
                self.cancelled.discard(rid)

    def dispatch(self, method, params):
        e = self.engine
        if method not in METHODS:
            raise EngineFailure("bad-input", f"unknown method {method!r}")
        if method not in SERVED_METHODS:
            raise EngineFailure("bad-input", f"{method} runs in the ONNX Runtime engine only; set moeScope.engine to onnxruntime for it")
        if method == "load":
            return e.load(params.get("modelPath"), params.get("options") or {})
        if method == "tokenize":
            return e.tokenize(params.get("texts"))
        if method == "trace":
            return e.trace(params)
        if method == "score":
            return e.score(params)
        e.unload()
        return {"ok": True}


def error_of(e: BaseException) -> dict:
    """The protocol error for an exception, with the code the host acts on: 'provider-unavailable' makes it
    offer "Run on CPU", 'non-finite' says the model, not the engine, computed NaN or infinity."""
    from .engine import Cancelled

    if isinstance(e, Cancelled):
        return {"code": "cancelled", "message": "the request was cancelled"}
    if isinstance(e, EngineFailure):
        return {"code": e.code, "message": str(e)}
    if isinstance(e, framing.NonFiniteNumber):
        return {"code": "non-finite", "message": f"the model produced a non-finite value in its result ({e})"}
    try:
        import torch

        if isinstance(e, torch.cuda.OutOfMemoryError):
            return {
                "code": "provider-unavailable",
                "message": f"out of GPU memory: {str(e).splitlines()[0]} (use a smaller --batch-size, or run on the CPU: executionProvider \"cpu\")",
            }
    except ImportError:
        pass
    return {"code": "internal", "message": "".join(traceback.format_exception(e)).strip()}

