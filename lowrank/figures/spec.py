"""A figure config: its ``figure`` section, its panels, the paper's protocol and quick variants.

A *figure config* is a run config (:func:`lowrank.config.base_config`) with one more
section, ``figure``, made by :func:`figure_section`:

==================  =================================================================
``number``          the paper's figure number (1–18)
``kind``            ``curves`` (rank and accuracy against epoch), ``heatmap`` (final
                    rank over a pair of hyperparameters), ``norm_ratios`` (‖W_{t−1}‖/‖W_t‖
                    per layer), ``spectra`` (singular values per layer), ``bound``
                    (Theorem 3.3's bound against ε beside the measured rank)
``vary``            the member field(s) the lines show: ``learning_rate``,
                    ``weight_decay``, ``momentum``, ``batch_size`` (two for a heat map)
``panels``          one dict per panel: ``label``, ``set`` (``{"section.field": value}``
                    applied to the run config) and optionally its own ``vary``
``epsilon``         the ε of the plotted average rank (``avg_rank@ε``)
``scale``           ``full`` (the paper's settings) or ``quick`` (CPU size)
``title``           the caption
``reduced``         what a quick variant reduced and why (empty at full scale)
==================  =================================================================

:func:`panel_configs` expands a figure config into one run config per panel (the
``figure`` section removed), each a sweep for :func:`lowrank.engine.run`. A figure's
results folder holds ``figure.json`` (:func:`write_manifest`) and one sweep results
folder per panel (``panel0/``, ``panel1/``, ...); ``lowrank.results.load_results`` reads
it back, ``lowrank.analysis.trends`` measures Prediction 4.1 on it and
``lowrank.figures.plots`` draws it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from lowrank import config as config_lib
from lowrank import io
from lowrank.data import spec as data_spec
from lowrank.results import HPARAMS

KINDS = ("curves", "heatmap", "norm_ratios", "spectra", "bound")
SCALES = ("full", "quick", "long")
# Datasets that load offline on a machine like the CI one (Debian's Fashion-MNIST files,
# scikit-learn's digits): what quick variants must use.
OFFLINE_DATASETS = ("fashion_mnist", "digits")
# Why the quick variants of the conv-net and ViT figures train on digits (8×8 images, a
# 360-image test set): every epoch evaluates each member on the whole test split, and the
# data config has no test-subset option (experiments/README.md has the timings).
DIGITS_REASON = (
    "digits instead of Fashion-MNIST: evaluating Fashion-MNIST's 10 000 test images every "
    "epoch for 15 conv nets takes ~3 min per epoch on a 2-core CPU (~14 min vmapped), "
    "while digits' 360 take seconds."
)


# ------------------------------------------------------------------------ the config


def optimizer_panels(sgd: str, adam: str, adam_values: Mapping[str, Any]) -> list[dict]:
    """Three panels, SGD, AdamW and Adam + L2 (``optim.name``): the Adam panels also set
    ``adam_values`` (their μ and λ); ``sgd`` and ``adam`` end the panels' labels."""
    return [
        panel(f"SGD, {sgd}", {"optim.name": "sgd"}),
        panel(f"AdamW, {adam}", {"optim.name": "adamw", **adam_values}),
        panel(f"Adam + L2, {adam}", {"optim.name": "adam", **adam_values}),
    ]


def panel(label: str, values: Mapping[str, Any] | None = None, *, vary: Any = None) -> dict:
    """One panel: a label and the run-config fields it sets (``{"sweep.batch_sizes": (4,)}``).

    Args:
      label: the panel's title, e.g. ``"B=4"``.
      values: dotted run-config fields and their values for this panel.
      vary: the panel's own varied field(s), when they differ from ``figure.vary``.
    """
    out: dict[str, Any] = {"label": label, "set": dict(values or {})}
    if vary is not None:
        out["vary"] = (vary,) if isinstance(vary, str) else tuple(vary)
    return out


def figure_section(
    number: int,
    kind: str,
    vary: str | Sequence[str],
    panels: Sequence[dict],
    *,
    scale: str,
    title: str,
    epsilon: float = 1e-3,
    reduced: str = "",
) -> ml_collections.ConfigDict:
    """The ``figure`` section of a figure config (see the module docstring)."""
    f = ml_collections.ConfigDict()
    f.number = number  # the paper's figure number
    f.kind = kind  # curves | heatmap | norm_ratios | spectra | bound
    f.vary = (vary,) if isinstance(vary, str) else tuple(vary)  # what the lines vary
    f.panels = tuple(panels)  # one sweep per panel: {"label", "set", optional "vary"}
    f.epsilon = epsilon  # ε of the plotted average rank
    f.scale = scale  # "full" (paper) | "quick" (2-core CPU, offline data) | "long" (GPU)
    f.title = title  # caption
    f.reduced = reduced  # what the quick variant reduced, and why
    return f


def set_fields(config: ml_collections.ConfigDict, values: Mapping[str, Any]) -> None:
    """Sets dotted fields (``"sweep.batch_sizes"``) of ``config``; each must exist.

    Raises:
      KeyError: a field that the config does not have (a typo would otherwise be ignored).
    """
    for dotted, value in values.items():
        *sections, field = dotted.split(".")
        node = config
        for s in sections:
            if s not in node:
                raise KeyError(f"figure panel sets {dotted!r}: the config has no section {s!r}.")
            node = node[s]
        if field not in node:
            raise KeyError(
                f"figure panel sets {dotted!r}: no field {field!r} in {'.'.join(sections)} "
                f"(its fields: {sorted(node.keys())})."
            )
        node[field] = value


@dataclasses.dataclass(frozen=True)
class Panel:
    """One panel of a figure, expanded into its own run config."""

    index: int
    name: str  # the panel's results subfolder
    label: str
    vary: tuple[str, ...]
    values: dict[str, Any]  # the fields the panel sets
    config: ml_collections.ConfigDict  # a run config for lowrank.engine.run


def panel_configs(config: ml_collections.ConfigDict) -> list[Panel]:
    """One run config per panel of a figure config (without the ``figure`` section)."""
    f = config.figure
    base = copy.deepcopy(config)
    with base.unlocked():  # command-line configs come locked
        del base["figure"]
    out = []
    for i, p in enumerate(f.panels):
        c = copy.deepcopy(base)
        set_fields(c, p.get("set", {}))
        vary = tuple(p.get("vary", f.vary))
        out.append(Panel(i, f"panel{i}", p["label"], vary, dict(p.get("set", {})), c))
    return out


def validate_figure(config: ml_collections.ConfigDict) -> list[Panel]:
    """Checks the ``figure`` section and validates every panel's run config.

    Returns:
      The expanded panels.

    Raises:
      lowrank.config.ConfigError: listing every bad field (figure and panels).
    """
    errors: list[str] = []
    if "figure" not in config:
        raise config_lib.ConfigError("bad figure config:\n  config.figure is missing.")
    f = config.figure
    if f.kind not in KINDS:
        errors.append(f"figure.kind={f.kind!r}: choose one of {KINDS}.")
    if f.scale not in SCALES:
        errors.append(f"figure.scale={f.scale!r}: choose one of {SCALES}.")
    if not (0 < f.epsilon < 1):
        errors.append(f"figure.epsilon={f.epsilon!r}: must be in (0, 1).")
    if not f.panels:
        errors.append("figure.panels is empty: give at least one panel.")
    panels: list[Panel] = []
    try:
        panels = panel_configs(config)
    except (KeyError, TypeError) as e:
        errors.append(str(e))
    for p in panels:
        bad = [v for v in p.vary if v not in HPARAMS]
        if bad or not p.vary:
            errors.append(f"figure panel {p.label!r}: vary={p.vary!r}; choose from {HPARAMS}.")
        if f.kind == "heatmap" and len(p.vary) != 2:
            errors.append(f"figure panel {p.label!r}: a heat map varies two fields.")
        try:
            config_lib.validate(p.config)
        except config_lib.ConfigError as e:
            errors.extend(f"panel {p.label!r}: {line.strip()}" for line in str(e).splitlines()[1:])
        eps = tuple(p.config.rank.epsilons)
        if f.kind in ("curves", "heatmap") and not any(math.isclose(e, f.epsilon) for e in eps):
            errors.append(
                f"figure panel {p.label!r}: figure.epsilon={f.epsilon} is not in "
                f"rank.epsilons={eps}."
            )
        if f.scale != "full" and p.config.data.name not in OFFLINE_DATASETS:
            errors.append(
                f"figure panel {p.label!r}: a quick variant must use offline data "
                f"{OFFLINE_DATASETS}, not data.name={p.config.data.name!r}."
            )
    if errors:
        raise config_lib.ConfigError("bad figure config:\n  " + "\n  ".join(errors))
    return panels


def manifest(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The JSON description of a figure's results folder (``figure.json``)."""
    f = config.figure
    return {
        "number": f.number,
        "kind": f.kind,
        "vary": list(f.vary),
        "epsilon": f.epsilon,
        "scale": f.scale,
        "title": f.title,
        "reduced": f.reduced,
        "panels": [
            {"name": p.name, "label": p.label, "vary": list(p.vary), "set": p.values}
            for p in panel_configs(config)
        ],
    }


def write_manifest(config: ml_collections.ConfigDict, folder: str | Path) -> None:
    """Writes ``figure.json`` and the figure's ``config.json`` into ``folder``."""
    folder = Path(folder)
    text = json.dumps(io._clean(manifest(config)), indent=1)
    io.atomic_write_text(folder / "figure.json", text + "\n")
    io.atomic_write_text(folder / "config.json", config.to_json_best_effort(indent=2) + "\n")


# ------------------------------------------------------------ the paper's protocol

# Training and test split sizes and image shapes (what the estimates below assume).


def paper_config(model: str, dataset: str = "cifar10") -> ml_collections.ConfigDict:
    """A run config with the paper's protocol (appendix B) and three seeds.

    SGD, momentum 0, μ × 0.1 at epochs 60, 100, 200 and 500 epochs (ViT: × 0.2 at 60
    and 100, 200 epochs); random crop, flip and 15k° rotation; standardized inputs;
    average rank at ε = 1e-3 (and 1e-2, 1e-1). Three seeds give the spread and the
    per-seed Spearman correlations of ``experiments/README.md``.
    """
    c = config_lib.base_config(model)
    c.data.name = dataset
    c.sweep.seeds = (0, 1, 2)
    c.sweep.momenta = (0.0,)
    if model == "vit":
        c.train.epochs = 200
        c.optim.milestones = (60, 100)
        c.optim.factor = 0.2
    else:
        c.train.epochs = 500
        c.optim.milestones = (60, 100, 200)
        c.optim.factor = 0.1
    c.optim.schedule = "piecewise"
    c.rank.epsilons = (1e-3, 1e-2, 1e-1)
    return c


def quick_variant(
    config: ml_collections.ConfigDict,
    *,
    reduced: str,
    epochs: int,
    train_subset: int,
    dataset: str = "fashion_mnist",
    model: Mapping[str, Any] | None = None,
) -> ml_collections.ConfigDict:
    """Shrinks a full-scale figure config in place to a 2-core-CPU run on offline data.

    Keeps the figure's structure: its panels, the grid of varied values, the fixed
    hyperparameters, the seeds and the learning-rate schedule in SGD steps: its milestones
    are the paper's times the ratio of the training-set sizes, so that they fall after as
    many steps of the same B as the paper's (a quick epoch of 2000 images is 1/25 of a
    CIFAR-10 epoch; the horizon ``h = 2λΣμ_t`` counts steps, not epochs). Changes: the
    dataset (CIFAR-10 is not available offline; Fashion-MNIST is), a stratified training
    subset, fewer epochs, no augmentation (Fashion-MNIST items are centred and upright,
    and the random crops, flips and 15k° rotations only slow a short run's fitting; the
    forgetting mechanism under test does not involve the data), optionally a narrower
    model, and spectra saved at the last epoch only.

    Args:
      config: a figure config (with its ``figure`` section).
      reduced: what else was reduced and why, for ``figure.reduced``.
      epochs: training epochs.
      train_subset: training examples kept (stratified).
      dataset: an offline dataset (``fashion_mnist`` or ``digits``).
      model: model fields to change (e.g. ``{"width": 8}``).
    """
    paper_examples = data_spec.expected_num_train(config.data)
    config.data.name = dataset
    config.data.source = "sklearn" if dataset == "digits" else "auto"
    config.data.train_subset = 0 if dataset == "digits" else train_subset
    steps_ratio = paper_examples / data_spec.expected_num_train(config.data)
    config.optim.milestones = tuple(round(m * steps_ratio) for m in config.optim.milestones)
    config.augment.crop = config.augment.flip = config.augment.rotate = False
    config.train.epochs = epochs
    for k, v in (model or {}).items():
        config.model[k] = v
    config.rank.spectra_every = 0
    config.figure.scale = "quick"
    full_epochs = 200 if config.model.name == "vit" else 500
    data_text = (
        "digits (scikit-learn, the whole 1437-image training split)"
        if dataset == "digits"
        else f"{dataset} (a stratified {train_subset}-image training subset)"
    )
    config.figure.reduced = (
        f"{data_text} instead of the paper's data (CIFAR-10, MNIST and SVHN are not "
        f"available offline); {epochs} epochs instead of {full_epochs}; no augmentation. "
        f"{reduced}"
    ).strip()
    return config


# Assumptions of :func:`estimate` (not measurements): the smallest time of one vmapped
# SGD step on one H200 (kernel launches and the scan loop bound small batches), and the
# sustained float32/TF32 rate of larger steps and of evaluation.
