"""Fig. 8: RES-BN-5-500 on CIFAR-10, lines B, panels μ ∈ {0.025, 0.05, 0.1}, λ = 5e-4.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 8 --out workdirs/fig08

Compute (``--estimate``): 45 members, 22,500 member-epochs, 36.3 M sequential SGD steps,
≈ 38.3 PFLOP: about 6.1 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 0.6 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline Fashion-MNIST, see ``experiments/README.md``)::

    python experiments/figure.py --fig 8 --quick --out workdirs/fig08_quick

The quick variant follows the horizon rule: every λ × 13.5, every μ × 0.25, 200 epochs; 4
of 8 claim rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h:
1.01, 2.09, 4.18, 4.22, 8.44, 8.44, 16.9, 16.9). Evaluated and measured every 17 epochs.
Measured here: 10.2 minutes (timing.json) beside another run.

What to expect (Prediction 4.1): smaller B gives a lower final average rank, more so for
larger μ. As in Fig. 7, λ = 5e-4 forgets slowly (log(2/ε)/(2μλ) ≈ 76 000 steps at
μ = 0.1); the horizon rule's λ × 10 brings that within a quick run's steps.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, horizon_rule, panel, paper_config, quick_variant

BATCH_SIZES = (4, 8, 16, 32, 64)  # the lines (chosen: the paper shows them only in plots)
LEARNING_RATES = (0.025, 0.05, 0.1)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("res_bn")
    c.model.width = 500  # RES-BN-5-500
    c.model.depth = 5
    c.sweep.weight_decays = (5e-4,)  # λ
    c.sweep.batch_sizes = BATCH_SIZES  # B: the lines (one compile group each)
    c.figure = figure_section(
        8,
        "curves",
        "batch_size",
        [panel(f"μ={mu:g}", {"sweep.learning_rates": (mu,)}) for mu in LEARNING_RATES],
        scale="full",
        title="RES-BN-5-500, varying B (λ = 5e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=8,
            train_subset=1000,
            model={"width": 128},
            reduced="RES-BN-5-128 instead of RES-BN-5-500 (16× fewer FLOPs per example in "
            "the blocks; the 5-block structure is kept).",
        )
        c.figure.title = "RES-BN-5-128 (width reduced), varying B (λ = 5e-4)"
        # CPU budget: 60 epochs took ≤ 5.3 min, so 200 (the rule's cap) end within ~18
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 200))
    elif arg:
        raise ValueError(
            f"configs/fig08.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
