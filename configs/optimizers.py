"""Beyond the paper: SGD, AdamW and Adam with coupled L2 at matched forgetting horizons.

MLP-BN-10-100 on 2000 Fashion-MNIST images (Fig. 6's quick setting at B = 8), lines λ,
one panel per optimizer, 60 epochs (15 000 steps), three seeds::

    python experiments/figure.py --config=configs/optimizers.py --out workdirs/optimizers \
        --publish experiments/results/optimizers

The λ grids match the horizon h = 2λΣμ_t step for step: SGD at μ = 0.1 takes Fig. 6's
quick grid (0, 1.66e-4, 4.98e-4, 1.66e-3, 4.98e-3: h = 0, 0.5, 1.5, 5, 15 at the end);
AdamW and Adam run at μ = 1e-3 (Adam's usual step) with every λ × 100, so 2μλ per step,
and under AdamW h, are SGD's. AdamW shrinks every direction by (1 − 2μλ) per step
exactly as SGD does (``lowrank.optim``), so the theory predicts the same threshold in h;
under Adam with coupled L2 the decay passes through Adam's normalization, no direction
shrinks by a known factor, and the records carry no horizon.

The SGD panel is Fig. 6's quick B = 8 panel (same seeds, data and settings) with the λ grid
the first version of the horizon rule gave it (× 0.166) and the 60 epochs Fig. 6 quick ran
before its schedule counted steps (it now runs 121 at λ × 0.057, the same horizons).
"""

from __future__ import annotations

import ml_collections

from lowrank.figures import figure_section, optimizer_panels, paper_config, quick_variant

SGD_WEIGHT_DECAYS = (0.0, 1.66e-4, 4.98e-4, 1.66e-3, 4.98e-3)  # Fig. 6's grid × 0.166
ADAM_LEARNING_RATE = 1e-3
SGD_LEARNING_RATE = 0.1


def _adam_grid() -> tuple[float, ...]:
    scale = SGD_LEARNING_RATE / ADAM_LEARNING_RATE  # the same 2μλ per step
    return tuple(float(f"{lam * scale:.6g}") for lam in SGD_WEIGHT_DECAYS)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/optimizers.py: takes no argument (got {arg!r}).")
    c = paper_config("mlp_bn")
    c.model.width, c.model.depth = 100, 10
    c.sweep.learning_rates = (SGD_LEARNING_RATE,)
    c.sweep.weight_decays = SGD_WEIGHT_DECAYS
    c.sweep.batch_sizes = (8,)
    adam = {"sweep.learning_rates": (ADAM_LEARNING_RATE,), "sweep.weight_decays": _adam_grid()}
    c.figure = figure_section(
        0,
        "curves",
        "weight_decay",
        optimizer_panels("μ = 0.1", "μ = 1e-3, λ × 100", adam),
        scale="full",
        title="MLP-BN-10-100, B = 8: SGD, AdamW and Adam + L2 at matched 2μλ",
    )
    quick_variant(
        c,
        epochs=60,
        train_subset=2000,
        reduced="Fig. 6's quick setting at B = 8; the λ grid as Fig. 6 quick's (horizon "
        "rule), × 100 for the Adam panels at μ = 1e-3.",
    )
    c.train.eval_every = c.rank.every = 5
    return c
