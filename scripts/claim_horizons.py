"""The forgetting horizon each figure's claim rows reach, from the configs alone.

    .venv/bin/python scripts/claim_horizons.py [--scale full|quick|long] [--figs 1,2,...]
                                               [--window LO,HI]

For every figure with claim rows (Prediction 4.1's trends with a predicted sign, as
``lowrank.analysis.claims`` judges them), the largest horizon h = 2λΣμ_t of each row's
members at the end of the run (``horizon_rule.member_horizon``: the schedule and momentum
included), how many rows reach ln(1/ε) (no ε-rank can fall before) and 2·ln(1/ε) (within
the rule's 1 % edge, ``horizon_rule.EDGE``), and how
many one λ factor could put inside the quick variants' window [1, 3]·ln(1/ε)
(``horizon_rule.most_placeable``). ``--scale full`` is the paper's own protocol (its data
sizes, epochs and milestones): what the theory allows the paper's runs to show.
``--window LO,HI`` (in units of ln(1/ε); default the rule's 1,3) re-applies the horizon
rule to the quick and long variants with another window: a what-if, e.g. ``1,inf`` to see
whether the window's upper edge or the ceilings and budget stop the λ factor.

``--needed`` asks, per figure, what epoch budget the quick variant would need before the
rule brings half of its claim rows past ln(1/ε) (no row can show the claim before), up to
the rule's cap, and what that would cost on the CPU, scaled from the committed run's
minutes (``experiments/results/figNN/timing.json``) by the ratio of epochs. A claim row
past ln(1/ε) is necessary for it to be shown, not sufficient: the rank must still move
≥ 5 % at test accuracy ≥ 0.3, which only a run measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
from pathlib import Path

import ml_collections

from lowrank.config_files import load_config_file
from lowrank.figures import horizon_rule, panel_configs
from lowrank.figures.horizon_rule import EDGE, claim_rows, member_horizon, most_placeable

ROOT = Path(__file__).resolve().parent.parent
RANK_FIGURES = tuple(range(1, 14))  # Figs. 14–18 have no claim rows
RESULTS = ROOT / "experiments" / "results"


def figure_config(number: int, scale: str) -> ml_collections.ConfigDict:
    """``configs/figNN.py``'s config at ``scale`` ("full": no argument)."""
    path = ROOT / "configs" / f"fig{number:02d}.py"
    return load_config_file(path, None if scale == "full" else scale)


def claim_horizons(config: ml_collections.ConfigDict) -> list[float]:
    """Each claim row's largest final horizon (its claim member's), in the rows' order."""
    return [
        max(member_horizon(p, m, int(p.train.epochs)) for p, m in row)
        for row in claim_rows([p.config for p in panel_configs(config)])
    ]


def table(numbers: tuple[int, ...], scale: str) -> str:
    window = horizon_rule.DEFAULT_RULE.window
    lines = [
        f"| figure ({scale}) | claim rows | h ≥ ln(1/ε) | h ≥ 2 ln(1/ε) "
        "| one factor could place | claim members' h (sorted) |",
        "|---|---|---|---|---|---|",
    ]
    for n in numbers:
        config = figure_config(n, scale)
        threshold = math.log(1 / float(config.figure.epsilon)) * (1 - EDGE)
        hs = sorted(claim_horizons(config))
        lines.append(
            f"| fig{n:02d} | {len(hs)} | {sum(h >= threshold for h in hs)} "
            f"| {sum(h >= 2 * threshold for h in hs)} | {most_placeable(hs, window)} "
            f"| {', '.join(f'{h:.3g}' for h in hs)} |"
        )
    return "\n".join(lines)


def rows_past_threshold(config: ml_collections.ConfigDict) -> int:
    """How many claim rows' claim members end at h ≥ ln(1/ε) (within the rule's edge)."""
    threshold = math.log(1 / float(config.figure.epsilon)) * (1 - EDGE)
    return sum(h >= threshold for h in claim_horizons(config))


def quick_with_budget(number: int, epochs: int) -> ml_collections.ConfigDict:
    """The quick variant as the rule makes it with a budget of ``epochs`` (the ``long``
    variant, whose only budget is the rule's cap, with that cap set to ``epochs``)."""
    saved = horizon_rule.DEFAULT_RULE
    horizon_rule.DEFAULT_RULE = dataclasses.replace(saved, max_epochs=epochs)
    try:
        return figure_config(number, "long")
    finally:
        horizon_rule.DEFAULT_RULE = saved


def committed_minutes(number: int, epochs: int) -> float | None:
    """Minutes of the committed quick run of Fig. ``number`` (its ``timing.json``), or None
    where there is none or it ran another number of epochs than ``epochs``."""
    folder = RESULTS / f"fig{number:02d}"
    if not (folder / "timing.json").exists() or not (folder / "figure.json").exists():
        return None
    ran = re.search(
        r"(\d+) epochs instead", json.loads((folder / "figure.json").read_text())["reduced"]
    )
    if ran is None or int(ran.group(1)) != epochs:
        return None
    return sum(json.loads((folder / "timing.json").read_text()).values()) / 60


def needed_table(numbers: tuple[int, ...]) -> str:
    """Per figure: the quick budget and its rows past ln(1/ε), and the smallest budget
    (≤ the rule's cap) with which the rule brings half of the rows there."""
    cap = horizon_rule.DEFAULT_RULE.max_epochs
    lines = [
        "| figure | claim rows | quick: epochs, rows past ln(1/ε), minutes "
        f"| half past ln(1/ε) needs (epochs ≤ {cap}) | its minutes (est.) |",
        "|---|---|---|---|---|",
    ]
    for n in numbers:
        quick = figure_config(n, "quick")
        epochs, total = int(quick.train.epochs), len(claim_horizons(quick))
        minutes = committed_minutes(n, epochs)
        need = next(
            (
                e
                for e in range(1, cap + 1)
                if 2 * rows_past_threshold(quick_with_budget(n, e)) >= total
            ),
            None,
        )
        at_cap = rows_past_threshold(quick_with_budget(n, cap))
        cost = "—" if need is None or minutes is None else f"{minutes * need / epochs:.0f}"
        lines.append(
            f"| fig{n:02d} | {total} | {epochs}, {rows_past_threshold(quick)}, "
            f"{'—' if minutes is None else f'{minutes:.1f}'} "
            f"| {need if need is not None else f'none ({at_cap} at {cap})'} | {cost} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="full", choices=("full", "quick", "long"))
    ap.add_argument("--figs", default=",".join(map(str, RANK_FIGURES)),
                    help="comma-separated figure numbers (1–13)")  # fmt: skip
    ap.add_argument("--window", help="LO,HI: the rule's window in units of ln(1/ε) (what-if)")
    ap.add_argument("--needed", action="store_true",
                    help="each quick variant's budget for half its rows past ln(1/ε)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.window:
        try:
            low, high = (float(x) for x in args.window.split(","))
        except ValueError:
            ap.error(f"--window {args.window}: give two numbers LO,HI, e.g. 1,3 or 1,inf.")
        if not 0 < low < high:
            ap.error(f"--window {args.window}: need 0 < LO < HI.")
        high = min(high, 1e6)  # "inf": open above (the rule's search needs finite edges)
        horizon_rule.DEFAULT_RULE = dataclasses.replace(
            horizon_rule.DEFAULT_RULE, window=(low, high)
        )
    numbers = tuple(int(f) for f in args.figs.split(","))
    if not set(numbers) <= set(RANK_FIGURES):
        ap.error(f"--figs {args.figs}: only figures 1–13 have claim rows (14–18 do not).")
    print(needed_table(numbers) if args.needed else table(numbers, args.scale))


if __name__ == "__main__":
    main()
