"""Fig. 18: Theorem 3.3's bound against ε beside the measured rank, MLP-BN-2-10000.

CIFAR-10, B = 6, μ = 0.1, λ = 8e-3 (the paper's protocol, appendix B). The bound
``m_l·B·log(2/ε)/(2μλ)`` (m_l = 1 for these Dense layers) falls below the width 10 000
for ε ≳ 0.17 (paper: "for any ε ≥ 0.3"), while the network trains.

Full scale::

    python experiments/figure.py --fig 18 --out workdirs/fig18

Compute (``--estimate``): 3 members, 1,500 member-epochs, 4.2 M sequential SGD steps, ≈
82.5 PFLOP: about 0.64 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 0.5 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline Fashion-MNIST; run here, see ``experiments/README.md``)::

    python experiments/figure.py --fig 18 --quick --out workdirs/fig18_quick \
        --publish experiments/results/fig18

The bound does not depend on the width, so with the quick variant's width 1024 it stays
above the width for every ε < 0.5: the quick run checks the measurement and the drawing,
not the paper's "bound < width" statement, which needs the full width.

The quick variant follows the horizon rule: every λ × 0.112, 200 epochs; 1 of 1 panels'
largest-h members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 11.9).
Evaluated every 17 epochs, measured every epoch. Measured here: 8.2 minutes (timing.json).
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, horizon_rule, panel, paper_config, quick_variant

# ε grid of the measured rank (the bound is drawn as a curve over ε < 0.5).
EPSILONS = (1e-3, 1e-2, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("mlp_bn")
    c.model.width = 10_000  # MLP-BN-2-10000
    c.model.depth = 2
    c.sweep.learning_rates = (0.1,)  # μ
    c.sweep.weight_decays = (8e-3,)  # λ
    c.sweep.batch_sizes = (6,)  # B
    c.rank.epsilons = EPSILONS
    # The SVD of a 10 000 × 10 000 matrix is the costliest step of an epoch here (not in
    # the estimate above): measure every 10 epochs, keep σ of the last epoch only.
    c.rank.every = 10
    c.rank.spectra_every = 0
    c.figure = figure_section(
        18,
        "bound",
        "batch_size",
        [panel("B=6, μ=0.1, λ=8e-3")],
        scale="full",
        title="MLP-BN-2-10000: Theorem 3.3 bound vs measured rank (B = 6, μ = 0.1, λ = 8e-3)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=15,
            train_subset=2000,
            model={"width": 1024},
            reduced="MLP-BN-2-1024 instead of MLP-BN-2-10000 (an SVD of a 10 000 × 10 000 "
            "matrix per member and epoch alone takes minutes on 2 cores).",
        )
        c.figure.title = (
            "MLP-BN-2-1024 (width reduced): Theorem 3.3 bound vs measured rank "
            "(B = 6, μ = 0.1, λ = 8e-3)"
        )
        # CPU budget: the rule's cap (18 of 20 min at 3.6 min per 60 epochs)
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 200))
    elif arg:
        raise ValueError(
            f"configs/fig18.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
