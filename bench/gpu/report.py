"""Merges the GPU benchmark's stage files (whatever exists) into one result JSON and prints the numbers."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def load(work: str, name: str):
    try:
        with open(os.path.join(work, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tiny", default="0")
    ap.add_argument("--total-seconds", type=float, default=0)
    a = ap.parse_args()
    w = a.work
    env = load(w, "environment.json")
    res: dict = {
        "benchmark": "bench/gpu/run.sh",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tiny": a.tiny == "1",
        "host": platform.node(),
        "environment": env,
        "checkpoint": load(w, "checkpoint.json"),
        "trace600": load(w, "trace.json"),
        "totalSeconds": a.total_seconds,
    }
    lines = []
    wall = load(w, "eval-wall.json")
    summary = load(w, os.path.join("run", "summary.json"))
    stats = load(w, "worker-stats.json") or {}
    if wall and summary:
        secs = wall["wallMs"] / 1000
        load_s = stats.get("load", {}).get("seconds", 0.0)
        score_s = stats.get("score", {}).get("seconds", 0.0)
        tok_s = stats.get("tokenize", {}).get("seconds", 0.0)
        forward_s = stats.get("forward", {}).get("seconds", 0.0)
        q = summary["questions"]
        computed = summary["tokens"]["computed"]
        res["eval"] = {
            "exitCode": wall["exitCode"],
            "complete": summary["complete"],
            "questions": q,
            "shots": summary["shots"],
            "tokenScope": summary["tokenScope"],
            "accuracyMicro": summary["accuracy"]["micro"],
            "wallSeconds": secs,
            "modelLoadSeconds": load_s,
            "secondsExcludingLoad": round(secs - load_s, 2),
            "questionsPerSecond": round(q / max(secs - load_s, 1e-9), 2),
            "computedTokens": computed,
            "paddingTokens": summary["tokens"]["padding"],
            "prefixReusedTokens": summary["tokens"]["prefixReusedTokens"],
            "computedTokensPerSecond": round(computed / max(secs - load_s, 1e-9), 1),
            # Where the time goes: the worker's own time per method; the rest is Node (process start,
            # dataset, planning, spans, records) and the pipe.
            "timeBreakdown": {
                "workerLoad": load_s,
                "workerTokenize": tok_s,
                "workerScore": score_s,
                "workerScoreCalls": stats.get("score", {}).get("calls", 0),
                "outsideWorker": round(secs - load_s - score_s - tok_s, 2),
                # Scoring forwards only (the worker times them with CUDA events, or the clock on a CPU).
                "forwardSeconds": forward_s,
                # Everything else of the run after the model load: planning, batching, transfer, routing
                # statistics, records. What the GPU path must keep small.
                "outsideForwardShare": round(1 - forward_s / max(secs - load_s, 1e-9), 3),
            },
        }
        e = res["eval"]
        lines.append(
            f"eval: {q} questions in {secs:.1f} s wall ({e['secondsExcludingLoad']:.1f} s without the {load_s:.1f} s model load): "
            f"{e['questionsPerSecond']} questions/s, {e['computedTokensPerSecond']:.0f} computed tokens/s; "
            f"worker score {score_s:.1f} s (forward {forward_s:.1f} s), tokenize {tok_s:.1f} s, outside the worker {e['timeBreakdown']['outsideWorker']:.1f} s; "
            f"{100 * e['timeBreakdown']['outsideForwardShare']:.0f}% of the run outside the forward pass"
        )
    elif wall:
        res["eval"] = {"exitCode": wall["exitCode"], "error": "no summary.json"}
        lines.append(f"eval FAILED (exit {wall['exitCode']})")
    plain = load(w, "plain.json")
    if plain:
        res["plainLoop"] = plain
        lines.append(
            f"plain transformers loop: {plain['promptsRun']} of {plain['promptsAvailable']} prompts{' (time-capped subset)' if plain['subset'] else ''} in "
            f"{plain['seconds']:.1f} s: {plain['questionsPerSecond']} questions/s, {plain['tokensPerSecond']:.0f} prompt tokens/s; "
            f"the full split would take ~{plain['estimatedFullSeconds']:.0f} s"
        )
    if res.get("eval", {}).get("questionsPerSecond") and plain:
        ratio = res["eval"]["questionsPerSecond"] / plain["questionsPerSecond"]
        res["ratioEngineVsPlain"] = round(ratio, 2)
        res["targets"] = {
            "fullMmluWithin60s": (not res["tiny"]) and res["eval"]["questions"] >= 14042 and res["eval"]["secondsExcludingLoad"] <= 60,
            "atLeast3xPlain": ratio >= 3,
        }
        lines.append(f"ratio (questions/s, engine with prefix reuse vs plain loop): {ratio:.2f}x; targets: {res['targets']}")
    t = res.get("trace600")
    if t:
        lines.append(f"trace: {t['tokens']} tokens, median {t['medianTraceMs']} ms ({t['tokensPerSecond']} tokens/s) on {t['device']} {t['dtype']}; model load {t['loadMs'] / 1000:.1f} s")
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    print("\n".join(["== MoE Scope GPU benchmark" + (" (TINY rehearsal)" if res["tiny"] else "")] + lines + [f"total {a.total_seconds:.0f} s; result: {a.out}"]))


if __name__ == "__main__":
    sys.exit(main())
