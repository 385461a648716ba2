"""Fig. 12: VGG-16 on CIFAR-10, lines B, panels (μ, λ) ∈ {(1e-3, 6e-3), (5e-3, 5e-4), (1e-2, 4e-4)}.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 12 --out workdirs/fig12

Compute (``--estimate``): 45 members, 22,500 member-epochs, 18.2 M sequential SGD steps,
≈ 2.34e+03 PFLOP: about 13 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 2 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 12 --quick --out workdirs/fig12_quick

The quick variant follows the horizon rule: every λ × 16.6, every μ × 8.66, 60 epochs; 3 of
3 claim rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h:
7.72, 12.4, 18.5). Evaluated and measured every 5 epochs. Measured here: 11.5 minutes
(timing.json).

What to expect (Prediction 4.1): smaller B gives a lower final average rank in every
panel.
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
PANELS = ((1e-3, 6e-3), (5e-3, 5e-4), (1e-2, 4e-4))  # the paper's (μ, λ)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("vgg16")
    c.sweep.batch_sizes = BATCH_SIZES  # one compile group per B
    c.figure = figure_section(
        12,
        "curves",
        "batch_size",
        [
            panel(
                f"({'abc'[i]}) μ={mu:g}, λ={lam:g}",
                {"sweep.learning_rates": (mu,), "sweep.weight_decays": (lam,)},
            )
            for i, (mu, lam) in enumerate(PANELS)
        ],
        scale="full",
        title="VGG-16, varying B",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=5,
            train_subset=0,
            dataset="digits",
            model={"width": 8},
            reduced=f"{DIGITS_REASON} VGG-16 of width 8 (8-16-32-64-64 channels); 15 "
            "compile groups.",
        )
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 60))
    elif arg:
        raise ValueError(
            f"configs/fig12.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
