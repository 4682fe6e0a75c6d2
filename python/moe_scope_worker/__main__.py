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


INSTALL_HINT = "install the worker's requirements into this Python: pip install -r python/requirements.txt (or set --python / moeScope.pythonPath to one that has them)"


def _refuse(message: str) -> None:
    # One line the host shows as the reason the worker exited, instead of a traceback's tail.
    print(f"moe_scope_worker: {message}", file=sys.stderr, flush=True)
    sys.exit(3)


def main() -> None:
    if sys.version_info < (3, 10) and "--check" not in sys.argv[1:]:
        _refuse(f"{sys.executable} is Python {sys.version.split()[0]}; the PyTorch worker needs Python 3.10 or later")
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
    try:
        from .framing import WORKER_HELLO
    except ImportError as e:
        _refuse(f"{sys.executable} lacks {e.name or e}: {INSTALL_HINT}")

    os.write(frames_fd, WORKER_HELLO)
    _die_with_parent()
    try:
        from .server import Server
    except ImportError as e:
        _refuse(f"{sys.executable} lacks {e.name or e}: {INSTALL_HINT}")

    Server(frames_fd).serve()


main()
