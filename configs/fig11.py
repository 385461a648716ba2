"""Fig. 11: ResNet-18 on CIFAR-10, lines B, panels μ ∈ {0.5, 1.0, 2.0}, λ = 5e-4.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 11 --out workdirs/fig11

Compute (``--estimate``): 45 members, 22,500 member-epochs, 18.2 M sequential SGD steps,
≈ 4.57e+03 PFLOP: about 21 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 11 --quick --out workdirs/fig11_quick

The quick variant follows the horizon rule: every λ × 1.5, every μ × 0.5, 63 epochs; 4 of 8
claim rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 1.04,
2.08, 4.16, 4.23, 8.41, 8.46, 16.9, 16.9). Evaluated every 5 epochs, measured every 5
epochs. Measured here: 12.0 minutes (timing.json).

What to expect (Prediction 4.1): smaller B gives a lower final average rank, more so for
larger μ.
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

BATCH_SIZES = (8, 16, 32, 64, 128)  # B: the lines (chosen; the paper plots only)
LEARNING_RATES = (0.5, 1.0, 2.0)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.weight_decays = (5e-4,)  # λ
    c.sweep.batch_sizes = BATCH_SIZES  # one compile group per B
    c.figure = figure_section(
        11,
        "curves",
        "batch_size",
        [panel(f"μ={mu:g}", {"sweep.learning_rates": (mu,)}) for mu in LEARNING_RATES],
        scale="full",
        title="ResNet-18, varying B (λ = 5e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=5,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} ResNet-18 of width 8 (8-16-32-64 channels); 15 "
            "compile groups.",
        )
        # CPU budget: 18 of 20 min at the measured 9.9 min per 35 epochs (35 was estimated)
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 63))
    elif arg:
        raise ValueError(
            f"configs/fig11.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
