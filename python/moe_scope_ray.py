"""Ray driver for `moe-scope sweep --backend ray`.

Reads the sweep plan (SWEEP_DIR/sweep.json, written by the moe-scope CLI), connects to a Ray cluster
(--address) or starts a local one, and submits one task per unfinished unit. A task runs the unit's
`node dist/cli.js eval ... --shard I/N` (its output goes to the driver through Ray's log streaming), with
the unit's CPUs and GPUs as Ray resources. A task whose worker is lost is retried by Ray; the retry
resumes the unit's run folder, whose lock and exactly-once records mean no question is recorded twice.
When an experiment's last shard finishes, the driver merges it (`moe-scope sweep --merge --experiment`).

Assumes the plan's paths (node, the CLI bundle, the model, data and sweep folders) are the same on every
node of the cluster: a shared filesystem, as on most clusters.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time

# The exit status of an eval whose run folder a live process holds (e.g. the lost attempt's eval).
from moe_scope_worker.protocol import EXIT_LOCKED

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the Ray worker running this task is killed, its eval must not live on and keep writing.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_unit(node: str, cli: str, eval_args: list[str], label: str, lock_wait_s: float) -> dict:
    """One unit of work (a Ray task): the unit's eval, retried while a lost attempt's eval still holds its folder."""
    t0 = time.time()
    while True:
        proc = subprocess.run([node, cli, *eval_args], preexec_fn=_die_with_parent)
        if proc.returncode == EXIT_LOCKED and time.time() - t0 < lock_wait_s:
            time.sleep(1.0)
            continue
        if proc.returncode != 0:
            raise RuntimeError(f"{label}: eval exited with status {proc.returncode}")
        return {"label": label, "host": socket.gethostname(), "worker_pid": os.getpid(), "seconds": time.time() - t0}


def read_plan(path: str) -> dict:
    """The sweep plan, or ValueError naming the file and the problem."""
    try:
        with open(path) as f:
            plan = json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: cannot read the sweep plan ({e.strerror})") from e
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(plan, dict) or plan.get("format") != "moe-scope.sweep":
        got = plan.get("format") if isinstance(plan, dict) else None
        raise ValueError(f'{path}: field "format" is {got!r}, not "moe-scope.sweep"')
    for field in ("node", "cli", "sweepDir", "units", "experiments"):
        if field not in plan:
            raise ValueError(f'{path}: field "{field}" is missing')
    return plan


def unit_finished(unit: dict) -> bool:
    try:
        with open(os.path.join(unit["dir"], "manifest.json")) as f:
            manifest = json.load(f)
        with open(os.path.join(unit["dir"], "summary.json")) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return False
    shard = manifest.get("shard") or {}
    return shard.get("index") == unit["shard"] and shard.get("count") == unit["shards"] and summary.get("complete") is True


def init_options(address: str | None) -> dict:
    """ray.init's options: a cluster the user named as it is; a local one on loopback only, without a dashboard
    (Ray's control plane has no authentication: nothing this sweep starts may listen beyond this machine)."""
    if address:
        return {"address": address, "log_to_driver": True}
    return {"address": None, "log_to_driver": True, "_node_ip_address": "127.0.0.1", "include_dashboard": False, "dashboard_host": "127.0.0.1"}


def descendants(pid: int) -> set[int]:
    """pid and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(children.get(p, []))
    return out


def _listening() -> dict[str, str]:
    """Socket inode -> local address of every TCP socket in LISTEN state (/proc/net/tcp and tcp6)."""
    out = {}
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            with open(f"/proc/net/{name}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 10 or cols[3] != "0A":
                continue
            ip_hex, port_hex = cols[1].split(":")
            out[cols[9]] = f"{_ip_of(ip_hex, width)}:{int(port_hex, 16)}"
    return out


def _ip_of(hex_ip: str, width: int) -> str:
    raw = bytes.fromhex(hex_ip)
    # /proc writes each 32-bit word in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, raw)


def _is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0]
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1") or host.startswith("::ffff:127.")


def exposed_sockets(pids: set[int]) -> list[str]:
    """'PID (NAME) ADDR' for every listening TCP socket of these processes bound beyond loopback."""
    listening = _listening()
    out = []
    for pid in sorted(pids):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                addr = listening.get(target[8:-1])
                if addr and not _is_loopback(addr):
                    out.append(f"{pid} ({comm}) {addr}")
    return out


def label_of(unit: dict) -> str:
    return f"{unit['experiment']} shard {unit['shard']}/{unit['shards']}"


def merge(plan: dict, experiment: str) -> bool:
    proc = subprocess.run([plan["node"], plan["cli"], "sweep", "--merge", "--out", plan["sweepDir"], "--experiment", experiment])
    return proc.returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plan", required=True, help="SWEEP_DIR/sweep.json written by moe-scope sweep")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    ap.add_argument("--max-retries", type=int, default=3, help="retries of a unit whose worker or eval failed")
    ap.add_argument("--allow-remote", action="store_true", help="accept a local Ray that listens beyond loopback")
    ap.add_argument("--lock-wait", type=float, default=300.0, help="seconds a retry waits for a lost attempt's eval to let go of the unit")
    args = ap.parse_args()

    try:
        plan = read_plan(args.plan)
    except ValueError as e:
        print(f"moe-scope ray: {e}", file=sys.stderr)
        return 2

    import ray  # the optional dependency, only needed from here on

    remote_unit = ray.remote(run_unit)
    ray.init(**init_options(args.address))
    if not args.address and not args.allow_remote:
        # A Ray that ignores the loopback request (older versions bind their gRPC servers to every
        # interface) is stopped rather than left reachable from the network.
        exposed = exposed_sockets(descendants(os.getpid()) - {os.getpid()})
        if exposed:
            ray.shutdown()
            print(
                "moe-scope ray: the local Ray cluster listens beyond this machine (" + "; ".join(exposed[:5]) + "); stopped it. "
                "Use a Ray that honours a loopback node address (2.54 or later), start a cluster yourself and pass --ray-address, "
                "or pass --allow-remote to accept it",
                file=sys.stderr,
            )
            return 2
    print(f"ray: connected; cluster resources {ray.cluster_resources()}", flush=True)
    units = plan["units"]
    todo_by_exp: dict[str, set[int]] = {e["name"]: set() for e in plan["experiments"]}
    pending: dict[ray.ObjectRef, dict] = {}
    done = 0
    for unit in units:
        if unit_finished(unit):
            done += 1
            print(f"ray: [{done}/{len(units)} units] {label_of(unit)}: finished earlier, skipped", flush=True)
            continue
        todo_by_exp[unit["experiment"]].add(unit["id"])
        ref = remote_unit.options(
            num_cpus=unit["cpus"],
            num_gpus=unit["gpus"],
            max_retries=args.max_retries,
            retry_exceptions=True,
            name=f"moe-scope unit {unit['id']}",
        ).remote(plan["node"], plan["cli"], unit["evalArgs"], label_of(unit), args.lock_wait)
        pending[ref] = unit

    failed: list[str] = []
    merged_ok = True
    # Experiments with nothing left to run merge at once (a re-run after the merge step failed).
    for name, todo in todo_by_exp.items():
        if not todo:
            merged_ok &= merge(plan, name)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        ref = ready[0]
        unit = pending.pop(ref)
        try:
            info = ray.get(ref)
            done += 1
            print(f"ray: [{done}/{len(units)} units] {label_of(unit)}: finished on {info['host']} in {info['seconds']:.1f} s", flush=True)
        except (ray.exceptions.RayTaskError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.RayError) as e:
            failed.append(label_of(unit))
            print(f"ray: {label_of(unit)}: failed after {args.max_retries} retries: {str(e).splitlines()[0]}", flush=True)
            continue
        todo = todo_by_exp[unit["experiment"]]
        todo.discard(unit["id"])
        if not todo:
            merged_ok &= merge(plan, unit["experiment"])
    ray.shutdown()
    if failed:
        print(f"ray: {len(failed)} units failed: {', '.join(failed)}; run the sweep again to retry them", file=sys.stderr)
        return 1
    return 0 if merged_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C: Ray ends its tasks as the driver goes; the exit status says it was interrupted.
        print("moe-scope ray: interrupted", file=sys.stderr)
        sys.exit(130)
