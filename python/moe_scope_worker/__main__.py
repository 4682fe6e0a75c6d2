"""`python -m moe_scope_worker` serves the protocol on stdin/stdout;
`python -m moe_scope_worker --check` prints what the environment offers (JSON) and exits."""
import os
import sys


def _die_with_parent() -> None:
    # The host may die without closing our stdin cleanly (SIGKILL of the editor): the worker must not live on.
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def main() -> None:
    if "--check" in sys.argv[1:]:
        from .environment import main as check

        check()
        return
    # Frames own the real stdout; anything a library prints goes to stderr instead of corrupting them.
    # Progress bars and advice from transformers would only be noise in the host's log.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    frames_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from .framing import WORKER_HELLO

    os.write(frames_fd, WORKER_HELLO)
    _die_with_parent()
    from .server import Server

    Server(frames_fd).serve()


main()
