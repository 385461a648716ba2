"""Fig. 7: MLP-BN-10-100 on CIFAR-10, lines B, panels μ ∈ {0.03, 0.1, 0.3}, λ = 5e-4.

Full scale (the paper's protocol, appendix B)::

    python experiments/figure.py --fig 7 --out workdirs/fig07

Compute (``--estimate``): 45 members, 22,500 member-epochs, 36.3 M sequential SGD steps,
≈ 3.79 PFLOP: about 5.0 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 0.5 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline Fashion-MNIST; run here, see ``experiments/README.md``)::

    python experiments/figure.py --fig 7 --quick --out workdirs/fig07_quick \
        --publish experiments/results/fig07

The quick variant follows the horizon rule: every λ × 2.01, every μ × 0.5, 137 epochs; 4 of
8 claim rows' claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h:
1.28, 2.07, 2.56, 5.16, 6.88, 10.3, 20.7, 20.7). Evaluated and measured every 11 epochs.
Measured here: 11.3 minutes (timing.json) beside another run.

What to expect (Prediction 4.1): smaller B gives a lower final average rank in every
panel, more so for larger μ. At the paper's λ a 10-epoch run reaches h ≤ 1.5 and shows
nothing; the horizon rule's run shows it where h passes ln(1/ε) (experiments/README.md).
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, horizon_rule, panel, paper_config, quick_variant

BATCH_SIZES = (4, 8, 16, 32, 64)  # the lines (chosen: the paper shows them only in plots)
LEARNING_RATES = (0.03, 0.1, 0.3)  # the paper's panels


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("mlp_bn")
    c.model.width = 100  # MLP-BN-10-100
    c.model.depth = 10
    c.sweep.weight_decays = (5e-4,)  # λ
    c.sweep.batch_sizes = BATCH_SIZES  # B: the lines (one compile group each)
    c.figure = figure_section(
        7,
        "curves",
        "batch_size",
        [panel(f"μ={mu:g}", {"sweep.learning_rates": (mu,)}) for mu in LEARNING_RATES],
        scale="full",
        title="MLP-BN-10-100, varying B (λ = 5e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=10,
            train_subset=2000,
            reduced="The model is the paper's (it is small); 2000 examples keep B = 4 at "
            "500 steps per epoch.",
        )
        # CPU budget: 60 epochs took 7.9 min, so 137 end within ~18
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 137))
    elif arg:
        raise ValueError(
            f"configs/fig07.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
