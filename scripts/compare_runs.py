"""Runs the same small jobs at another revision and in this checkout, and compares results.

Usage::

    python scripts/compare_runs.py BASE_REV [--keep DIR]

BASE_REV is checked out into a temporary git worktree; both trees run with this
checkout's Python environment. The jobs: the default config's quick variant, the first
panel of Fig. 6's quick variant for two epochs, and a recorded-window run (``record.steps``,
which writes ``theory.jsonl``). Every record of ``metrics.jsonl`` and ``theory.jsonl`` is
compared field by field, except the wall-clock ``seconds``; the script prints each field
that differs with its largest relative difference, and exits 1 if any does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
JOBS = {
    "default_quick": ["-m", "lowrank.main", "--config=configs/default.py:quick", "--noplot"],
    "fig06_quick_panel0": [
        "experiments/figure.py", "--fig=6", "--quick", "--panels=0",
        "--config.train.epochs=2",
    ],
    "recorded_window": [
        "-m", "lowrank.main", "--config=configs/default.py:quick", "--noplot",
        "--config.record.steps=8", "--config.record.windows=(1,4,8)",
        "--config.sweep.weight_decays=(0.0,0.01)", "--config.sweep.momenta=(0.0,0.9)",
    ],
}  # fmt: skip
VOLATILE = {"seconds"}


def run_job(tree: Path, name: str, args: list[str], out: Path) -> Path:
    workdir = out / name
    flag = "--out" if args[0].startswith("experiments/") else "--workdir"
    cmd = [sys.executable, *args, f"{flag}={workdir}", "--noprogress"]
    env = {**os.environ, "PYTHONPATH": str(tree), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{name} failed in {tree}:\n{done.stderr[-3000:]}")
    return workdir


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}/"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}{i}/"))
        return out
    return {prefix.rstrip("/"): value}


def compare_file(a: Path, b: Path) -> dict[str, float]:
    """Field → largest relative difference (inf for a missing or non-numeric mismatch)."""
    if not a.exists() and not b.exists():
        return {}
    lines_a = a.read_text().splitlines() if a.exists() else []
    lines_b = b.read_text().splitlines() if b.exists() else []
    if len(lines_a) != len(lines_b):
        return {"(number of records)": math.inf}
    diffs: dict[str, float] = {}
    for la, lb in zip(lines_a, lines_b, strict=True):
        fa, fb = flatten(json.loads(la)), flatten(json.loads(lb))
        for key in set(fa) | set(fb):
            field = key.split("/")[0]
            if field in VOLATILE or fa.get(key) == fb.get(key):
                continue
            va, vb = fa.get(key), fb.get(key)
            if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
                rel = abs(va - vb) / max(abs(va), abs(vb), 1e-30)
            else:
                rel = math.inf
            diffs[key] = max(diffs.get(key, 0.0), rel)
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", help="the revision to compare with (e.g. a commit or main)")
    ap.add_argument("--keep", help="keep both runs' results in this folder")
    args = ap.parse_args()
    out = Path(args.keep or tempfile.mkdtemp(prefix="compare-runs-"))
    base_tree = out / "base_tree"
    if not base_tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base],
                       cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    failed = False
    try:
        for name, job in JOBS.items():
            a = run_job(base_tree, name, job, out / "base")
            b = run_job(ROOT, name, job, out / "head")
            for rel in ("metrics.jsonl", "theory.jsonl", "panel0/metrics.jsonl"):
                diffs = compare_file(a / rel, b / rel)
                status = "identical" if not diffs else f"{len(diffs)} fields differ"
                if (a / rel).exists() or (b / rel).exists():
                    print(f"{name}/{rel}: {status}")
                for key, d in sorted(diffs.items()):
                    print(f"    {key}: relative {d:.3g}")
                failed |= bool(diffs)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT,
                       capture_output=True)  # fmt: skip
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
