"""The paper's figures as configs and as results: panels, final values, Spearman trends.

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
``figure`` section removed), each a sweep for :func:`lowrank.sweep.run`. A figure's
results folder holds ``figure.json`` (:func:`write_manifest`) and one sweep results
folder per panel (``panel0/``, ``panel1/``, ...); :func:`load_results` reads it back, and
also reads a plain sweep results folder as a one-panel figure. :func:`trends` measures
Prediction 4.1 on the results: the Spearman correlation between each hyperparameter and
the final average rank (or any per-epoch metric), per seed, with the other
hyperparameters held fixed; :func:`decay_trends` does the same for the *decay ratio*, a
run's final value over that of the same run with λ = 0, which separates what weight
decay does from what training does alone.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np

from lowrank import config as config_lib
from lowrank import data, io

KINDS = ("curves", "heatmap", "norm_ratios", "spectra", "bound")
SCALES = ("full", "quick")
# Member fields a figure can vary (the traced hyperparameters and the compile-group one).
HPARAMS = ("learning_rate", "weight_decay", "momentum", "batch_size")
SYMBOLS = {"learning_rate": "μ", "weight_decay": "λ", "momentum": "β", "batch_size": "B"}
# Prediction 4.1: the sign of the correlation between a hyperparameter and the rank.
PREDICTED_SIGN = {"learning_rate": -1, "weight_decay": -1, "batch_size": +1}
# Datasets that load offline on a machine like the CI one (Debian's Fashion-MNIST files,
# scikit-learn's digits): what quick variants must use.
OFFLINE_DATASETS = ("fashion_mnist", "digits")
# Why the quick variants of the conv-net and ViT figures train on digits (8×8 images, a
# 360-image test set), measured on a 2-core CPU: every epoch evaluates each member on the
# whole test split, and Fashion-MNIST's 10 000 test images through 15 ResNet-18s of width
# 8 took about 14 minutes per epoch with the members vmapped, and would still take about
# 3 minutes one member at a time (1.1 ms per image and member), more than the training.
# The data config has no test-subset option.
DIGITS_REASON = (
    "digits instead of Fashion-MNIST: evaluating Fashion-MNIST's 10 000 test images every "
    "epoch for 15 conv nets takes ~3 min per epoch on a 2-core CPU (~14 min vmapped), "
    "while digits' 360 take seconds."
)


# ------------------------------------------------------------------------ the config


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
    f.scale = scale  # "full" (paper) | "quick" (2-core CPU, offline data)
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
    config: ml_collections.ConfigDict  # a run config for lowrank.sweep.run


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
        if f.scale == "quick" and p.config.data.name not in OFFLINE_DATASETS:
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
    hyperparameters, the seeds and the learning-rate schedule (whose milestones then lie
    past the last epoch). Changes: the dataset (CIFAR-10 is not available offline;
    Fashion-MNIST is), a stratified training subset, fewer epochs, no augmentation
    (Fashion-MNIST items are centred and upright, and the random crops, flips and 15k°
    rotations only slow a short run's fitting; the forgetting mechanism under test does
    not involve the data), optionally a narrower model, and spectra saved at the last
    epoch only.

    Args:
      config: a figure config (with its ``figure`` section).
      reduced: what else was reduced and why, for ``figure.reduced``.
      epochs: training epochs.
      train_subset: training examples kept (stratified).
      dataset: an offline dataset (``fashion_mnist`` or ``digits``).
      model: model fields to change (e.g. ``{"width": 8}``).
    """
    config.data.name = dataset
    config.data.source = "sklearn" if dataset == "digits" else "auto"
    config.data.train_subset = 0 if dataset == "digits" else train_subset
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
STEP_LATENCY_MS = {"mlp_bn": 0.5, "res_bn": 0.6, "vgg16": 2.0, "resnet18": 3.0, "vit": 3.0}
SUSTAINED_TFLOPS = 100.0


def forward_flops(model_config: ml_collections.ConfigDict, shape: Sequence[int]) -> float:
    """FLOPs of one example's forward pass (XLA's count of the lowered program)."""
    import jax
    import jax.numpy as jnp

    from lowrank import models

    model = models.build_model(model_config, 10)
    x = jnp.zeros((8, *shape))
    rngs = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    v = jax.eval_shape(lambda: model.init(rngs, x, train=False))
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(v, x)
    return float(lowered.cost_analysis()["flops"]) / 8


def estimate(config: ml_collections.ConfigDict) -> dict[str, float]:
    """Rough compute of a figure config (all panels) or a run config, from XLA's FLOPs.

    Training costs ≈ 3 forward passes per example and step, evaluation one forward pass
    per example of the training and test splits per epoch. ``gpu_hours`` models one H200
    with :data:`STEP_LATENCY_MS` and :data:`SUSTAINED_TFLOPS` (assumptions): each step
    takes the larger of the latency and its FLOPs at the sustained rate.

    Returns:
      ``members``, ``member_epochs``, ``sequential_steps`` (the steps of all compile
      groups, run one after another), ``forward_mflop`` (per example, largest panel),
      ``pflop`` (in total) and ``gpu_hours``.
    """
    total = {"members": 0, "member_epochs": 0, "sequential_steps": 0, "pflop": 0.0,
             "gpu_hours": 0.0, "forward_mflop": 0.0}  # fmt: skip
    cache: dict[str, float] = {}
    rate = SUSTAINED_TFLOPS * 1e12
    runs = [p.config for p in panel_configs(config)] if "figure" in config else [config]
    for c in runs:
        n_train, n_test, shape = data.SPLITS[c.data.name]
        if c.data.train_subset:
            n_train = min(n_train, c.data.train_subset)
        if c.data.pad_to_32 and shape[0] == 28:
            shape = (32, 32, shape[2])
        key = f"{c.model.to_json()}{shape}"
        if key not in cache:
            cache[key] = forward_flops(c.model, shape)
        fwd = cache[key]
        s = c.sweep
        per_group = len(s.seeds) * len(s.learning_rates) * len(s.weight_decays) * len(s.momenta)
        epochs = c.train.epochs
        latency = STEP_LATENCY_MS.get(c.model.name, 1.0) / 1e3
        for b in s.batch_sizes:
            steps = epochs * (n_train // b)
            train_flops = per_group * steps * 3 * b * fwd
            eval_flops = per_group * (epochs + 1) * (n_train + n_test) * fwd
            total["members"] += per_group
            total["member_epochs"] += per_group * epochs
            total["sequential_steps"] += steps
            total["pflop"] += (train_flops + eval_flops) / 1e15
            seconds = steps * max(latency, train_flops / steps / rate) + eval_flops / rate
            total["gpu_hours"] += seconds / 3600
        total["forward_mflop"] = max(total["forward_mflop"], fwd / 1e6)
    return total


# ----------------------------------------------------------------------- the results


def _number(v: Any) -> float:
    """A metrics value as a float: None (NaN in the file) → nan, "inf" → inf."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return float(v)
    return float(v)


@dataclasses.dataclass
class PanelResults:
    """One panel's sweep results folder, read back."""

    name: str
    label: str
    vary: tuple[str, ...]
    workdir: Path
    config: dict[str, Any]
    members: list[dict[str, Any]]
    records: list[dict[str, Any]]

    def member_records(self) -> dict[int, list[dict[str, Any]]]:
        """Each member's records in epoch order."""
        out: dict[int, list[dict[str, Any]]] = {}
        for r in self.records:
            out.setdefault(r["member"], []).append(r)
        for rs in out.values():
            rs.sort(key=lambda r: r["epoch"])
        return out

    def final(self, key: str) -> dict[int, float]:
        """Each member's value of ``key`` at its last epoch that has it (nan if diverged)."""
        out: dict[int, float] = {}
        for mid, rs in self.member_records().items():
            have = [r for r in rs if key in r]
            if not have:
                continue
            last = have[-1]
            diverged = last.get("diverged") or last.get("nonfinite")
            out[mid] = math.nan if diverged else _number(last[key])
        return out

    def member(self, mid: int) -> dict[str, Any]:
        """The member entry (id, group, seed, μ, λ, β, B) of ``members.json``."""
        return next(m for m in self.members if m["id"] == mid)

    def spectra(self, epoch: int | None = None) -> dict[int, tuple[int, dict[str, np.ndarray]]]:
        """Saved singular values per compile group: ``{group: (epoch, {path: (members, k)})}``.

        Takes ``epoch`` when saved, else each group's latest saved epoch.
        """
        out: dict[int, tuple[int, dict[str, np.ndarray]]] = {}
        pattern = re.compile(r"group(\d+)_epoch(\d+)\.npz$")
        found: dict[int, dict[int, Path]] = {}
        for p in sorted((self.workdir / "spectra").glob("group*_epoch*.npz")):
            m = pattern.search(p.name)
            if m:
                found.setdefault(int(m.group(1)), {})[int(m.group(2))] = p
        for g, files in found.items():
            e = epoch if epoch in files else max(files)
            with np.load(files[e]) as z:
                out[g] = (e, {k: z[k] for k in z.files})
        return out

    def dataset(self) -> str:
        return str(self.config.get("data", {}).get("name", ""))


@dataclasses.dataclass
class FigureResults:
    """A figure's results folder: its manifest and one :class:`PanelResults` per panel."""

    folder: Path
    figure: dict[str, Any]
    panels: list[PanelResults]

    @property
    def kind(self) -> str:
        return self.figure["kind"]

    @property
    def epsilon(self) -> float:
        return float(self.figure.get("epsilon", 1e-3))


def _read_json(path: Path, default: Any) -> Any:
    return json.loads(path.read_text()) if path.exists() else default


def _read_panel(workdir: Path, name: str, label: str, vary: Sequence[str]) -> PanelResults:
    metrics = workdir / "metrics.jsonl"
    if not metrics.exists():
        raise FileNotFoundError(f"figures: no results in {workdir} (metrics.jsonl is missing).")
    return PanelResults(
        name=name,
        label=label,
        vary=tuple(vary),
        workdir=workdir,
        config=_read_json(workdir / "config.json", {}),
        members=_read_json(workdir / "members.json", []),
        records=io.read_jsonl(metrics),
    )


def _inferred_vary(records: list[dict[str, Any]]) -> tuple[str, ...]:
    """The hyperparameters that take more than one value in a sweep (for plain folders)."""
    vary = tuple(h for h in HPARAMS if len({r.get(h) for r in records}) > 1)
    return vary or ("weight_decay",)


def load_results(folder: str | Path) -> FigureResults:
    """Reads a figure's results folder, or a plain sweep results folder as one panel.

    Panels whose sweep has not written results yet are left out.

    Raises:
      FileNotFoundError: neither ``figure.json`` nor ``metrics.jsonl`` is in ``folder``.
    """
    folder = Path(folder)
    fig_file = folder / "figure.json"
    if fig_file.exists():
        figure = json.loads(fig_file.read_text())
        panels = [
            _read_panel(folder / p["name"], p["name"], p["label"], p["vary"])
            for p in figure["panels"]
            if (folder / p["name"] / "metrics.jsonl").exists()
        ]
        return FigureResults(folder, figure, panels)
    if (folder / "metrics.jsonl").exists():
        records = io.read_jsonl(folder / "metrics.jsonl")
        vary = _inferred_vary(records)
        fixed = [h for h in HPARAMS if h not in vary and records and h in records[0]]
        label = setting_label(fixed, [records[0][h] for h in fixed]) if fixed else folder.name
        panel_ = _read_panel(folder, ".", label, vary)
        cfg = panel_.config
        eps = cfg.get("rank", {}).get("epsilons", [1e-3])
        model, dataset = cfg.get("model", {}).get("name"), cfg.get("data", {}).get("name")
        title = f"{folder.name}: {model} on {dataset}" if model and dataset else folder.name
        figure = {"number": None, "kind": "curves", "vary": list(vary), "epsilon": eps[0],
                  "scale": "", "title": title, "reduced": "",
                  "panels": [{"name": ".", "label": label, "vary": list(vary)}]}  # fmt: skip
        return FigureResults(folder, figure, [panel_])
    raise FileNotFoundError(
        f"figures: {folder} is not a results folder (no figure.json, no metrics.jsonl)."
    )


# ------------------------------------------------------------------ curves over seeds


@dataclasses.dataclass(frozen=True)
class Series:
    """One line of a figure: a key against epoch, mean and spread over seeds."""

    setting: tuple[Any, ...]  # the values of the varied fields
    epochs: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    seeds: int


def series(panel_: PanelResults, key: str, vary: Sequence[str] | None = None) -> list[Series]:
    """``key`` against epoch, one line per setting of ``vary``, mean ± std over members.

    Members with the same values of ``vary`` (normally: different seeds) are averaged;
    NaN values (diverged members) are left out of the mean.
    """
    vary = tuple(vary or panel_.vary)
    by_setting: dict[tuple, dict[int, list[float]]] = {}
    for r in panel_.records:
        if key not in r:
            continue
        setting = tuple(r[h] for h in vary)
        by_setting.setdefault(setting, {}).setdefault(r["epoch"], []).append(_number(r[key]))
    out = []
    for setting in sorted(by_setting):
        per_epoch = by_setting[setting]
        epochs = np.asarray(sorted(per_epoch))
        values = [np.asarray(per_epoch[e], float) for e in epochs]
        out.append(
            Series(
                setting=setting,
                epochs=epochs,
                mean=np.asarray([_nanstat(np.nanmean, v) for v in values]),
                std=np.asarray([_nanstat(np.nanstd, v) for v in values]),
                seeds=max(len(v) for v in values),
            )
        )
    return out


def _nanstat(fn: Any, values: np.ndarray) -> float:
    return float(fn(values)) if np.isfinite(values).any() else math.nan


def setting_label(vary: Sequence[str], setting: Sequence[Any]) -> str:
    """``"λ=0.001"`` / ``"B=8, μ=0.1"``."""
    return ", ".join(f"{SYMBOLS.get(h, h)}={v:g}" for h, v in zip(vary, setting, strict=True))


# ------------------------------------------------------------------- Spearman trends


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties get average ranks); nan if either is constant."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclasses.dataclass(frozen=True)
class Trend:
    """Spearman correlation of one hyperparameter with the final rank, others held fixed.

    Attributes:
      hparam: the varied member field.
      fixed: the other fields' values (only those that vary somewhere in the figure) and
        the dataset, where it varies.
      values: the distinct values of ``hparam``, increasing.
      mean_rank: the final rank at each value, mean over seeds.
      rhos: one Spearman ρ per seed (nan where the rank did not vary).
      pooled: ρ over all (value, rank) pairs of all seeds.
      predicted: Prediction 4.1's sign (−1, +1), 0 for "small effect" (λ = 0), None: none.
    """

    hparam: str
    fixed: dict[str, Any]
    values: tuple[float, ...]
    mean_rank: tuple[float, ...]
    rhos: tuple[float, ...]
    pooled: float
    predicted: int | None

    @property
    def rho_mean(self) -> float:
        return _nanstat(np.nanmean, np.asarray(self.rhos, float))

    @property
    def rho_std(self) -> float:
        return _nanstat(np.nanstd, np.asarray(self.rhos, float))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(rho_mean=self.rho_mean, rho_std=self.rho_std)
        return d


def final_table(results: FigureResults, key: str) -> list[dict[str, Any]]:
    """One row per member of every panel: its hyperparameters, dataset and final ``key``."""
    rows = []
    for p in results.panels:
        finals = p.final(key)
        for mid, value in finals.items():
            m = p.member(mid)
            row = {h: m[h] for h in HPARAMS}
            rows.append({**row, "seed": m["seed"], "dataset": p.dataset(), "value": value})
    return rows


def _group_order(item: tuple[tuple, Any]) -> tuple:
    """Numbers in numeric order, everything else by its text."""
    return tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in item[0])


def trends(results: FigureResults, key: str | None = None, min_values: int = 3) -> list[Trend]:
    """Prediction 4.1 measured: for each hyperparameter, ρ(value, final rank) per seed.

    Members of all panels are pooled; for each hyperparameter h with at least
    ``min_values`` values, members are grouped by every other hyperparameter (and the
    dataset), and within each group one Spearman ρ between h and the final ``key`` is
    computed per seed.

    Args:
      results: a figure's results.
      key: the metric; default ``avg_rank@ε`` with the figure's ε.
      min_values: fewest distinct values of h for a trend.
    """
    key = key or f"avg_rank@{results.epsilon:g}"
    return trends_of_rows(final_table(results, key), min_values)


def decay_ratio_table(results: FigureResults, key: str) -> list[dict[str, Any]]:
    """Each decayed member's final ``key`` divided by that of its run without decay.

    The control of a member with λ > 0 is the member with λ = 0 and the same seed, μ, β,
    B and dataset (from any panel); members without a control are left out. The ratio is
    the part of the change that weight decay adds to what training alone does, which is
    what Prediction 4.1's B and μ claims are about: measures like the stable rank also
    fall with smaller B or larger μ without decay.

    Returns:
      Rows as :func:`final_table`'s, ``value`` being the ratio (nan where the control's
      value is 0 or not finite); empty when the figure has no λ = 0 member.
    """
    rows = final_table(results, key)
    others = ("seed", "dataset", *(h for h in HPARAMS if h != "weight_decay"))
    controls = {tuple(r[k] for k in others): r["value"] for r in rows if r["weight_decay"] == 0}
    out = []
    for r in rows:
        base = controls.get(tuple(r[k] for k in others))
        if r["weight_decay"] == 0 or base is None:
            continue
        ok = math.isfinite(base) and base != 0 and math.isfinite(r["value"])
        out.append({**r, "value": r["value"] / base if ok else math.nan})
    return out


def decay_trends(results: FigureResults, key: str, min_values: int = 3) -> list[Trend]:
    """Trends of the decay ratio: ρ(value, final ``key`` / its λ = 0 control's) per seed.

    As :func:`trends`, on :func:`decay_ratio_table`'s rows (members with λ > 0 that have a
    control). Prediction 4.1's signs carry over: decay should lower the ratio more at
    larger λ, larger μ and smaller B.
    """
    return trends_of_rows(decay_ratio_table(results, key), min_values)


def trends_of_rows(rows: Sequence[dict[str, Any]], min_values: int = 3) -> list[Trend]:
    """The trends of :func:`trends` from rows of :func:`final_table`'s form."""
    if not rows:
        return []
    context = [h for h in (*HPARAMS, "dataset") if len({r[h] for r in rows}) > 1]
    out = []
    for h in HPARAMS:
        others = [k for k in (*HPARAMS, "dataset") if k != h]
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault(tuple(r[k] for k in others), []).append(r)
        for gkey, members in sorted(groups.items(), key=_group_order):
            values = sorted({r[h] for r in members})
            if len(values) < min_values:
                continue
            seeds = sorted({r["seed"] for r in members})
            rhos = []
            for s in seeds:
                mine = [r for r in members if r["seed"] == s]
                rhos.append(spearman([r[h] for r in mine], [r["value"] for r in mine]))
            mean_rank = tuple(
                _nanstat(np.nanmean, np.asarray([r["value"] for r in members if r[h] == v]))
                for v in values
            )
            held = dict(zip(others, gkey, strict=True))
            fixed = {k: v for k, v in held.items() if k in context}
            predicted: int | None = None
            if h == "weight_decay":
                predicted = PREDICTED_SIGN[h]
            elif h in PREDICTED_SIGN:
                # Prediction 4.1: without weight decay, B and μ should barely matter.
                predicted = 0 if held["weight_decay"] == 0 else PREDICTED_SIGN[h]
            out.append(
                Trend(
                    hparam=h,
                    fixed=fixed,
                    values=tuple(float(v) for v in values),
                    mean_rank=mean_rank,
                    rhos=tuple(rhos),
                    pooled=spearman([r[h] for r in members], [r["value"] for r in members]),
                    predicted=predicted,
                )
            )
    return out


def _fmt(x: float, spec: str = ".2f") -> str:
    return "nan" if not math.isfinite(x) else format(x, spec)


def trend_table(
    trend_list: Sequence[Trend], value_name: str = "final rank", value_format: str = ".1f"
) -> str:
    """A text table of trends: ρ mean ± std over seeds, its range, pooled ρ, rank range.

    ``seeds`` reads ``k/n`` when only k of the n seeds have a ρ (the others' ranks did not
    vary, so ρ is undefined); the mean, spread and range are over those k. ``value_name``
    and ``value_format`` head and format the column of mean values (e.g. "decay ratio",
    ".2f" for :func:`decay_trends`).
    """
    header = ["varied", "fixed", "values", "seeds", "rho mean ± std", "rho min..max",
              "pooled rho", f"{value_name} (low → high value)", "predicted"]  # fmt: skip
    rows = []
    for t in trend_list:
        finite = [r for r in t.rhos if math.isfinite(r)]
        rng = f"{min(finite):+.2f}..{max(finite):+.2f}" if finite else "nan"
        fixed = ", ".join(
            f"{SYMBOLS.get(k, k)}={v:g}" if isinstance(v, (int, float)) else f"{v}"
            for k, v in t.fixed.items()
        )
        predicted = {-1: "negative", 1: "positive", 0: "≈ 0 (λ = 0)", None: "-"}[t.predicted]
        ranks = " → ".join(_fmt(v, value_format) for v in t.mean_rank)
        rows.append(
            [
                SYMBOLS.get(t.hparam, t.hparam),
                fixed or "-",
                " ".join(f"{v:g}" for v in t.values),
                len(t.rhos) if len(finite) == len(t.rhos) else f"{len(finite)}/{len(t.rhos)}",
                f"{_fmt(t.rho_mean, '+.2f')} ± {_fmt(t.rho_std)}",
                rng,
                _fmt(t.pooled, "+.2f"),
                ranks,
                predicted,
            ]
        )
    return io.format_table(header, rows) if rows else "(no hyperparameter takes 3 values)"
