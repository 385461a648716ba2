"""Each layer's ε-rank fall against the earliest horizon forgetting alone allows.

    .venv/bin/python scripts/layer_thresholds.py RESULTS_DIR [--member N] [--fraction 0.05]

RESULTS_DIR is a sweep's results folder (``lowrank.main --workdir``) or one panel's folder
of a figure; it needs singular values saved often (``--config.rank.spectra_every=5``) and
a record at each (``--config.rank.every`` dividing it). Prints, per layer, the first saved
epoch whose ε-rank is below the initial count by ``max(1, ⌈fraction·count⌉)``, the
horizon there, and h* = ln(1/ε) + ln(σ_k(0)/σ_max(0)) − ln(σ_max(t)/σ_max(0))
(``lowrank.analysis.layer_thresholds``): a fall seen below h* is not forgetting.
"""

from __future__ import annotations

import argparse
import sys

from lowrank.analysis.layer_thresholds import layer_falls, table
from lowrank.results import load_results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="a sweep's (or a figure panel's) results folder")
    ap.add_argument("--member", type=int, default=0, help="member id (members.json)")
    ap.add_argument("--fraction", type=float, default=0.05,
                    help="a fall of this fraction of the initial ε-rank (at least 1)")  # fmt: skip
    args = ap.parse_args(argv)
    results = load_results(args.results)
    panel = results.panels[0]
    ids = sorted(m["id"] for m in panel.members)
    if args.member not in ids:
        ap.error(f"--member {args.member}: {args.results} holds members {ids}.")
    records = panel.member_records()[args.member]
    horizons = {r["epoch"]: r["horizon"] for r in records if "horizon" in r}
    m = panel.member(args.member)
    setting = ", ".join(f"{k}={m[k]}" for k in ("learning_rate", "weight_decay", "momentum"))
    print(f"member {args.member}: {setting}, B={m['batch_size']}, seed {m['seed']}; "
          f"ε = {results.epsilon}")  # fmt: skip
    try:
        falls = layer_falls(panel.member_spectra(args.member), horizons, results.epsilon,
                            args.fraction)  # fmt: skip
    except ValueError as e:
        print(f"{args.results}: {e}", file=sys.stderr)
        return 2
    print(table(falls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
