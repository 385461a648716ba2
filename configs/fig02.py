"""Fig. 2: ResNet-18 on CIFAR-10, lines μ, panels B ∈ {4, 8, 16}, λ = 5e-4.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 2 --out workdirs/fig02

Compute (``--estimate``): 45 members, 22,500 member-epochs, 10.9 M sequential SGD steps,
≈ 4.57e+03 PFLOP: about 15 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 2 --quick --out workdirs/fig02_quick

The quick variant follows the horizon rule: every λ × 1.57, every μ × 0.5, 60 epochs; 4 of 8
claim rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 0.169,
0.845, 1.69, 4.19, 8.43, 8.45, 16.9, 16.9). Evaluated and measured every 5 epochs. Measured
here: 15.9 minutes (timing.json; two members at a time, sweep.threads).

What to expect (Prediction 4.1): the final average rank falls as μ rises, more so for
smaller B.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import (
    DIGITS_REASON,
    figure_section,
    horizon_rule,
    panel,
    paper_config,
    quick_variant,
)

LEARNING_RATES = (0.01, 0.05, 0.1, 0.5, 1.0)  # μ: the lines (chosen; the paper plots only)
BATCH_SIZES = (4, 8, 16)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.learning_rates = LEARNING_RATES
    c.sweep.weight_decays = (5e-4,)  # λ
    c.figure = figure_section(
        2,
        "curves",
        "learning_rate",
        [panel(f"B={b}", {"sweep.batch_sizes": (b,)}) for b in BATCH_SIZES],
        scale="full",
        title="ResNet-18, varying μ (λ = 5e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=6,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} ResNet-18 of width 8 (8-16-32-64 channels).",
        )
        # CPU budget: 18 of 20 min at the measured 17.0 min per 45 epochs with members one at
        # a time, 1.26× faster with sweep.threads (two members at once)
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 60))
    elif arg:
        raise ValueError(
            f"configs/fig02.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
