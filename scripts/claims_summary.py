"""One Markdown table of every published figure's claim rows (issue 15's criterion).

    .venv/bin/python scripts/claims_summary.py [RESULTS_DIR]   (default experiments/results)

Reads each ``figNN/trends.json`` (its ``claims``, written by ``experiments/figure.py`` with
``lowrank.analysis.claims``) and ``figNN/timing.json``, and prints per figure: the claim
rows shown out of all, the most of them one λ factor could put inside the horizon window
at all (``horizon_rule.most_placeable``: the bound the grid's own ratios set), the largest
horizon of its claim rows, what failed in the others, the λ = 0 controls' largest change,
and the run's minutes.
"""

from __future__ import annotations

import collections
import json
import math
import sys
from pathlib import Path

from lowrank.figures.horizon_rule import HorizonRule, most_placeable


def _short(why: str) -> str:
    """A failure without its numbers, so that the same failures count together."""
    for start, text in (("rank moves", "rank moves < 5 %"), ("test accuracy", "accuracy < 0.3")):
        if why.startswith(start):
            return text
    return why


def summarize(folder: Path) -> str | None:
    trends = folder / "trends.json"
    if not trends.exists():
        return None
    rows = json.loads(trends.read_text()).get("claims")
    if rows is None:
        return None
    claims = [r for r in rows if r["trend"]["predicted"] in (-1, 1)]
    controls = [r for r in rows if r["trend"]["predicted"] == 0]
    shown = sum(r["shown"] for r in claims)
    fails = collections.Counter(
        _short(part) for r in claims if not r["shown"] for part in r["why"].split("; ")
    )
    top_h = [max((h for h in r["horizons"] if h is not None), default=math.nan) for r in claims]
    timing = folder / "timing.json"
    minutes = sum(json.loads(timing.read_text()).values()) / 60 if timing.exists() else math.nan
    control = max((100 * r["change"] for r in controls), default=None)
    placeable = most_placeable([h for h in top_h if math.isfinite(h)], HorizonRule().window)
    failed = ", ".join(f"{why} ×{n}" for why, n in fails.most_common()) or "—"
    h = f"{min(top_h):.3g}–{max(top_h):.3g}" if top_h else "—"
    return (
        f"| {folder.name} | {shown} of {len(claims)} | {placeable} | {h} | {failed} | "
        f"{'—' if control is None else f'{control:.1f} %'} | "
        f"{'—' if math.isnan(minutes) else f'{minutes:.1f}'} |"
    )


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/results")
    print(
        "| figure | claim rows shown | one factor could place | largest h per row (min–max) | "
        "failure reasons (a row can have several) | λ = 0 rows: largest change | minutes |"
    )
    print("|---|---|---|---|---|---|---|")
    for folder in sorted(root.glob("fig*")):
        line = summarize(folder)
        if line:
            print(line)


if __name__ == "__main__":
    main()
