"""Fig. 13: ResNet-18 on MNIST, Fashion-MNIST and SVHN, lines μ, B = 16, λ = 5e-4.

Full scale (the paper's protocol, appendix B; one panel per dataset)::

    python experiments/figure.py --fig 13 --out workdirs/fig13

MNIST and SVHN load through TFDS or from local copies of their files (see the README's
Data section); on an offline machine pass ``--config.data.local_dir=...``.

Compute (``--estimate``): 45 members, 22,500 member-epochs, 6.0 M sequential SGD steps,
≈ 5.2e+03 PFLOP: about 14 GPU-hours on one H200 under the assumptions of
``lowrank.figures.estimate`` (a step takes at least 3 ms; 100 TFLOP/s sustained). An
estimate, not a measurement.

Quick (2-core CPU, offline data, see ``experiments/README.md``)::

    python experiments/figure.py --fig 13 --quick --out workdirs/fig13_quick

The quick variant has one panel per dataset available offline: Fashion-MNIST (one seed:
its 10 000 test images are evaluated every epoch) and scikit-learn's digits (three
seeds).

The quick variant follows the horizon rule: every λ × 4, 40 epochs; 2 of 2 claim rows'
claim members end inside the window h ∈ [6.91, 20.7] = [1, 3]·ln(1/ε) (h: 9.92, 14.2).
Evaluated and measured every 3 epochs. Measured here: 11.7 minutes (timing.json) beside
another run.

What to expect (Prediction 4.1): the final average rank falls as μ rises on every
dataset.
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, horizon_rule, panel, paper_config, quick_variant

LEARNING_RATES = (0.01, 0.05, 0.1, 0.5, 1.0)  # μ: the lines (chosen; the paper plots only)
DATASETS = (("mnist", "MNIST"), ("fashion_mnist", "Fashion-MNIST"), ("svhn_cropped", "SVHN"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = paper_config("resnet18")
    c.sweep.learning_rates = LEARNING_RATES
    c.sweep.weight_decays = (5e-4,)  # λ
    c.sweep.batch_sizes = (16,)  # B
    c.figure = figure_section(
        13,
        "curves",
        "learning_rate",
        [panel(label, {"data.name": name}) for name, label in DATASETS],
        scale="full",
        title="ResNet-18 on other datasets, varying μ (B = 16, λ = 5e-4)",
    )
    if arg in horizon_rule.QUICK_ARGS:
        quick_variant(
            c,
            epochs=5,
            train_subset=1000,
            model={"width": 4},
            reduced="ResNet-18 of width 4 (4-8-16-32 channels). MNIST and SVHN are not "
            "available offline: the panels are Fashion-MNIST (seed 0 only, because its "
            "10 000 test images are evaluated every epoch) and scikit-learn's digits "
            "(8×8 images, all 1437 training images, three seeds).",
        )
        c.figure.panels = (
            panel("Fashion-MNIST", {"data.name": "fashion_mnist", "sweep.seeds": (0,)}),
            panel(
                "digits",
                {"data.name": "digits", "data.source": "sklearn", "data.train_subset": 0},
            ),
        )
        horizon_rule.apply(c, max_epochs=horizon_rule.budget(arg, 40))
    elif arg:
        raise ValueError(
            f"configs/fig13.py: unknown argument {arg!r}; use 'quick', 'long' or none."
        )
    return c
