"""A Markdown table of a results folder's final values: per panel and setting, the
forgetting horizon h, the final ε-rank and test accuracy (and the layer outputs' ε-rank
where recorded), mean over the seeds that ran to the end.

    .venv/bin/python scripts/results_table.py RESULTS_DIR

For the per-figure sections of experiments/README.md.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowrank.results import SYMBOLS, load_results


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def panel_rows(p, key: str) -> list[str]:
    finals = {k: p.final(k) for k in (key, "test_accuracy", "horizon", f"repr_{key}")}
    settings: dict[tuple, list[int]] = {}
    for mid in finals[key]:
        m = p.member(mid)
        settings.setdefault(tuple(m[h] for h in p.vary), []).append(mid)
    features = bool(finals[f"repr_{key}"])
    rows = []
    for setting, mids in sorted(settings.items()):
        ran = [m for m in mids if math.isfinite(finals[key][m])]
        cells = [
            ", ".join(f"{SYMBOLS.get(h, h)} = {v:g}" for h, v in zip(p.vary, setting, strict=True)),
            f"{_mean([p.member_records()[m][-1].get('horizon') or 0.0 for m in mids]):.3g}",
            f"{_mean([finals[key][m] for m in mids]):.1f}",
            f"{_mean([finals['test_accuracy'].get(m, math.nan) for m in mids]):.2f}",
        ]
        if features:
            cells.append(f"{_mean([finals[f'repr_{key}'].get(m, math.nan) for m in mids]):.1f}")
        cells.append(f"{len(ran)} of {len(mids)}")
        rows.append("| " + " | ".join(cells) + " |")
    head = ["setting", "h", "ε-rank", "test acc"] + (["outputs' ε-rank"] if features else [])
    head.append("seeds ran")
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows]


def main() -> None:
    results = load_results(sys.argv[1])
    key = f"avg_rank@{results.epsilon:g}"
    for p in results.panels:
        print(f"**{p.label}**\n")
        print("\n".join(panel_rows(p, key)))
        print()


if __name__ == "__main__":
    main()
