"""The run config: its default fields, and validation before anything compiles.

A run config is an ``ml_collections.ConfigDict`` with the sections ``model``, ``data``,
``augment``, ``optim``, ``train``, ``sweep`` and ``rank``. Config files in ``configs/``
start from :func:`base_config` and change what they need.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import ml_collections

from lowrank import augment, budget, data, models, optim, rank
from lowrank.errors import ConfigError

__all__ = ["ConfigError", "base_config", "rank_selection", "validate"]

PRECISIONS = ("default", "high", "highest")
VECTORIZE = ("auto", "vmap", "loop")
EPOCH_LOOPS = ("auto", "scan", "host")


def rank_selection(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """The ``rank`` section's choice of weight matrices, as ``rank.weight_matrices`` takes it."""
    r = config.rank
    return {
        "preset": r.preset,
        "include": list(r.include) or None,
        "exclude": list(r.exclude) or None,
    }


def base_config(model: str = "mlp_bn") -> ml_collections.ConfigDict:
    """All fields with the paper's defaults; ``model`` picks the model family."""
    c = ml_collections.ConfigDict()
    c.model = models.default_model_config(model)
    c.data = data.default_data_config()
    c.augment = augment.default_augment_config()
    c.optim = optim.default_optim_config()

    c.train = ml_collections.ConfigDict()
    c.train.epochs = 500  # paper: 500 (ViT 200)
    # "epochs": every batch size runs train.epochs epochs (the paper); "steps": every batch
    # size takes the SGD steps the smallest takes in train.epochs epochs (lowrank.budget).
    c.train.budget = "epochs"
    c.train.eval_batch_size = 1000  # examples per evaluation step (memory, not results)
    c.train.eval_train = True  # also evaluate the training split each epoch (eval mode)
    c.train.eval_every = 1  # evaluate every this many epochs (and at the last one)
    # Matrix-multiply precision (jax.default_matmul_precision): "default" lets GPUs use
    # TF32; "highest" forces full float32.
    c.train.precision = "default"
    # Where an epoch's steps loop: "scan" (one compiled lax.scan per epoch), "host" (one
    # compiled call per step) or "auto" (host for convolutional models on CPUs, else scan).
    # XLA:CPU runs convolutions inside a compiled loop many times slower (jax-ml/jax#12868).
    c.train.epoch_loop = "auto"

    # The members of the sweep: the Cartesian product of these lists. Batch sizes split
    # the sweep into compile groups, run one after another; all other values are traced.
    c.sweep = ml_collections.ConfigDict()
    c.sweep.seeds = (0,)  # initialization, shuffling, augmentation and dropout seeds
    c.sweep.learning_rates = (0.1,)  # μ
    c.sweep.weight_decays = (5e-4,)  # λ, the paper's (PyTorch weight_decay = 2λ)
    c.sweep.momenta = (0.0,)  # β (paper: 0 unless stated)
    c.sweep.batch_sizes = (16,)  # B
    # How a compile group's members run: "vmap" (one program over all members, sharded over
    # the devices), "loop" (the one-member program called for each member in turn, on one
    # device) or "auto" (loop on a single CPU device, where XLA:CPU runs the members'
    # batched matmuls and the grouped convolutions vmap makes slower than one member at a
    # time, benchmarks/README.md; vmap on GPUs and several devices).
    c.sweep.vectorize = "auto"
    # With "loop": how many members train at once, each from a host thread (0: one per CPU
    # core); their numbers are the same bit for bit. Evaluation and rank SVDs stay serial.
    c.sweep.threads = 0

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every = 10  # save the sweep state every this many epochs (and at the end)
    c.checkpoint.keep = 2  # how many checkpoints to keep (older ones are deleted)

    # The theory on the real run (lowrank.theory): record the last `steps` SGD steps of
    # each compile group (W, momentum buffer and data gradient of the selected matrices;
    # memory 3·steps·Σ out·in numbers per member) and write theory.jsonl: the forgetting
    # identity's residual, rank U_{T,n} against m_l·B·n (Lemma 3.1) and Lemma 3.2's sides
    # for each n in `windows`.
    c.record = ml_collections.ConfigDict()
    c.record.steps = 0  # window length N (0: off); at most the steps of one epoch
    c.record.windows = (1, 4, 16)  # the n (≤ steps) to check the decomposition at
    c.record.include = ()  # regexes: record only these matrices (default: the rank selection)

    c.rank = ml_collections.ConfigDict()
    c.rank.epsilons = (1e-3, 1e-2, 1e-1)  # thresholds ε; the paper's figures use 1e-3
    c.rank.normalization = "spectral"  # "spectral": σ/σ_max (paper) | "frobenius" (authors)
    c.rank.preset = "paper"  # "paper": all weight matrices | "authors": no classifier/1×1
    c.rank.include = ()  # regexes on parameter paths: keep only matching matrices
    c.rank.exclude = ()  # regexes on parameter paths: drop matching matrices
    c.rank.every = 1  # compute ranks, norms and bounds every this many epochs
    c.rank.spectra_every = 10  # save all singular values every this many epochs (0: last)
    c.rank.method = "svd"  # "svd" (float32 SVD) | "gram" (float64 eigenvalues; needs x64)
    # Representation ranks (lowrank.train.represent): each measured layer's outputs on this
    # many training images (drawn once from rank.probe_seed), ranked like the weights at
    # the same epochs; 0: off.
    c.rank.probe_size = 0
    c.rank.probe_seed = 0
    return c


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _grid(errors: list[str], config: ml_collections.ConfigDict, field: str) -> Sequence:
    values = config.sweep.get(field)
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, (tuple, list)) or not values:
        errors.append(
            f"sweep.{field}={values!r}: must be a non-empty list, e.g. "
            f"--config.sweep.{field}='(0.1,)'."
        )
        return ()
    return values


SECTIONS = ("model", "data", "augment", "optim", "train", "sweep", "rank", "checkpoint", "record")


def _checks(errors: list[str]):
    def check(ok: bool, message: str) -> None:
        if not ok:
            errors.append(message)

    return check


def _library_sections(config: ml_collections.ConfigDict) -> list[str]:
    """The model, data and augmentation sections, checked by their own modules."""
    errors = []
    for validator in (
        lambda: models.validate_model_config(
            config.model, data.NUM_CLASSES.get(config.data.name, 10)
        ),
        lambda: data.validate_data_config(config.data),
        lambda: augment.validate_augment_config(config.augment),
    ):
        try:
            validator()
        except ValueError as e:
            errors.append(str(e))
    return errors


def _optim_section(o: ml_collections.ConfigDict) -> list[str]:
    errors: list[str] = []
    check = _checks(errors)
    check(
        o.schedule in optim.SCHEDULES,
        f"optim.schedule={o.schedule!r}: choose one of {optim.SCHEDULES}.",
    )
    check(
        all(isinstance(m, int) and m > 0 for m in o.milestones)
        and list(o.milestones) == sorted(set(o.milestones)),
        f"optim.milestones={tuple(o.milestones)!r}: must be increasing positive epochs.",
    )
    check(_is_number(o.factor) and o.factor > 0, f"optim.factor={o.factor!r}: must be > 0.")
    check(
        o.decay_mask in optim.DECAY_MASKS,
        f"optim.decay_mask={o.decay_mask!r}: choose one of {optim.DECAY_MASKS}.",
    )
    check(isinstance(o.decoupled, bool), f"optim.decoupled={o.decoupled!r}: must be True or False.")
    return errors


def _optimizer_choice(config: ml_collections.ConfigDict) -> list[str]:
    """``optim.name`` and what Adam needs: its own β1, β2, ε; no SGD momentum; no windows."""
    o, errors = config.optim, []
    check = _checks(errors)
    name = o.get("name", "sgd")
    if name not in optim.OPTIMIZERS:
        return [f"optim.name={name!r}: choose one of {optim.OPTIMIZERS}."]
    if name == "sgd":
        return []
    for field in ("adam_b1", "adam_b2"):
        v = o.get(field)
        check(_is_number(v) and 0 <= v < 1, f"optim.{field}={v!r}: must be in [0, 1).")
    eps = o.get("adam_eps")
    check(_is_number(eps) and eps > 0, f"optim.adam_eps={eps!r}: must be > 0.")
    check(
        all(b == 0 for b in config.sweep.momenta),
        f"sweep.momenta={tuple(config.sweep.momenta)!r} with optim.name={name!r}: β is SGD's "
        "momentum; Adam's is optim.adam_b1. Use sweep.momenta=(0.0,).",
    )
    check(
        not o.decoupled,
        f"optim.decoupled=True with optim.name={name!r}: choose 'adamw' for decoupled decay "
        "and leave optim.decoupled=False.",
    )
    check(
        config.record.steps == 0 or name == "adamw",
        f"record.steps={config.record.steps} with optim.name={name!r}: Adam with coupled L2 "
        "puts the decay through Adam's scaling, so no direction shrinks by a known factor "
        "and the forgetting identity does not hold; record with 'adamw' or 'sgd', or set "
        "record.steps=0.",
    )
    return errors


def _train_section(t: ml_collections.ConfigDict) -> list[str]:
    errors: list[str] = []
    check = _checks(errors)
    check(
        isinstance(t.epochs, int) and t.epochs >= 1,
        f"train.epochs={t.epochs!r}: must be an integer ≥ 1.",
    )
    check(
        isinstance(t.eval_batch_size, int) and t.eval_batch_size >= 1,
        f"train.eval_batch_size={t.eval_batch_size!r}: must be an integer ≥ 1.",
    )
    check(
        isinstance(t.eval_every, int) and t.eval_every >= 1,
        f"train.eval_every={t.eval_every!r}: must be an integer ≥ 1.",
    )
    check(
        t.precision in PRECISIONS, f"train.precision={t.precision!r}: choose one of {PRECISIONS}."
    )
    check(
        t.epoch_loop in EPOCH_LOOPS,
        f"train.epoch_loop={t.epoch_loop!r}: choose one of {EPOCH_LOOPS}.",
    )
    return errors


def _sweep_section(config: ml_collections.ConfigDict, devices: int | None) -> list[str]:
    """The grids (each value, and 2μλ < 1 for every pair) and how members run."""
    errors: list[str] = []
    check = _checks(errors)
    vectorize = config.sweep.vectorize
    check(vectorize in VECTORIZE, f"sweep.vectorize={vectorize!r}: choose one of {VECTORIZE}.")
    if vectorize == "loop" and devices is not None and devices > 1:
        errors.append(
            f"sweep.vectorize='loop' runs members one after another on one device, but "
            f"{devices} devices are visible; use sweep.vectorize='vmap' to spread the "
            "members over them, or make one device visible (e.g. CUDA_VISIBLE_DEVICES=0)."
        )
    threads = config.sweep.threads  # ml_collections keeps it an int
    check(threads >= 0, f"sweep.threads={threads}: give a whole number ≥ 0 (0: one per core).")
    seeds, lrs, wds, moms, batch_sizes = (
        _grid(errors, config, f)
        for f in ("seeds", "learning_rates", "weight_decays", "momenta", "batch_sizes")
    )
    for s in seeds:
        check(isinstance(s, int) and s >= 0, f"sweep.seeds contains {s!r}: seeds are integers ≥ 0.")
    for mu in lrs:
        check(_is_number(mu) and mu > 0, f"sweep.learning_rates contains μ={mu!r}: μ must be > 0.")
    for lam in wds:
        check(
            _is_number(lam) and lam >= 0, f"sweep.weight_decays contains λ={lam!r}: λ must be ≥ 0."
        )
    for beta in moms:
        check(
            _is_number(beta) and 0 <= beta < 1,
            f"sweep.momenta contains β={beta!r}: β must be in [0, 1).",
        )
    for b in batch_sizes:
        check(
            isinstance(b, int) and b >= 1,
            f"sweep.batch_sizes contains B={b!r}: B must be an integer ≥ 1.",
        )
    for mu in lrs:
        for lam in wds:
            if _is_number(mu) and _is_number(lam) and mu > 0 and lam >= 0:
                check(
                    2 * mu * lam < 1,
                    f"sweep: μ={mu} with λ={lam} gives 2μλ={2 * mu * lam:g} ≥ 1, so the decay "
                    "factor 1−2μλ is ≤ 0 and the weights flip sign or vanish every step; "
                    "use 2μλ < 1 (smaller μ or λ).",
                )
    return errors


def _rank_section(r: ml_collections.ConfigDict) -> list[str]:
    errors: list[str] = []
    check = _checks(errors)
    eps = r.epsilons if isinstance(r.epsilons, (tuple, list)) else (r.epsilons,)
    check(len(eps) > 0, "rank.epsilons is empty: give at least one ε in (0, 1), e.g. (1e-3,).")
    for e in eps:
        check(_is_number(e) and 0 < e < 1, f"rank.epsilons contains ε={e!r}: ε must be in (0, 1).")
    check(
        r.normalization in rank.NORMALIZATIONS,
        f"rank.normalization={r.normalization!r}: choose one of {rank.NORMALIZATIONS}.",
    )
    check(r.preset in rank.PRESETS, f"rank.preset={r.preset!r}: choose one of {rank.PRESETS}.")
    check(r.method in ("svd", "gram"), f"rank.method={r.method!r}: choose 'svd' or 'gram'.")
    check(
        isinstance(r.every, int) and r.every >= 1,
        f"rank.every={r.every!r}: must be an integer ≥ 1.",
    )
    for field in ("probe_size", "probe_seed"):
        v = r.get(field, 0)
        check(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0,
            f"rank.{field}={v!r}: must be an integer ≥ 0"
            + (" (0: no representation ranks)." if field == "probe_size" else "."),
        )
    check(
        isinstance(r.spectra_every, int) and r.spectra_every >= 0,
        f"rank.spectra_every={r.spectra_every!r}: must be an integer ≥ 0 (0: last epoch only).",
    )
    return errors


def _record_and_checkpoint_sections(config: ml_collections.ConfigDict) -> list[str]:
    errors: list[str] = []
    check = _checks(errors)
    rec = config.record
    check(
        isinstance(rec.steps, int) and rec.steps >= 0,
        f"record.steps={rec.steps!r}: must be an integer ≥ 0 (0: no recording).",
    )
    if isinstance(rec.steps, int) and rec.steps > 0:
        for n in rec.windows:
            check(
                isinstance(n, int) and 1 <= n <= rec.steps,
                f"record.windows contains n={n!r}: each n must be in 1..record.steps={rec.steps}.",
            )
    k = config.checkpoint
    check(
        isinstance(k.every, int) and k.every >= 0,
        f"checkpoint.every={k.every!r}: must be an integer ≥ 0 (0: only at the end).",
    )
    check(isinstance(k.keep, int) and k.keep >= 1, f"checkpoint.keep={k.keep!r}: must be ≥ 1.")
    return errors


def _sizes(config: ml_collections.ConfigDict, num_train: int) -> list[str]:
    """Batch sizes and recording windows against the training set's size."""
    batch_sizes = [b for b in config.sweep.batch_sizes if isinstance(b, int) and b >= 1]
    too_big = [b for b in batch_sizes if b > num_train]
    if too_big:
        return [
            f"sweep.batch_sizes contains B={too_big}: larger than the training set "
            f"({num_train} examples), so an epoch has no step. Use B ≤ {num_train}, or a "
            "larger training set (data.train_subset=0, a smaller data.validation_size)."
        ]
    probe = config.rank.get("probe_size", 0)
    if isinstance(probe, int) and probe > num_train:
        return [
            f"rank.probe_size={probe}: more probe images than the {num_train} training "
            f"examples; use rank.probe_size ≤ {num_train} (0: off)."
        ]
    steps = min(num_train // b for b in batch_sizes) if batch_sizes else 0
    record = config.record.steps
    if batch_sizes and isinstance(record, int) and record > steps:
        return [
            f"record.steps={record}: longer than one epoch ({steps} steps at "
            f"B={max(batch_sizes)}); use record.steps ≤ {steps}."
        ]
    return []


def validate(
    config: ml_collections.ConfigDict,
    *,
    num_train: int | None = None,
    devices: int | None = None,
) -> None:
    """Refuses a bad config before anything loads, compiles or is written.

    Args:
      config: a run config.
      num_train: the training set's size; default: what ``data.expected_num_train`` says
        the data config will load (None where it cannot say).
      devices: the number of devices the run will use (refuses ``sweep.vectorize='loop'``
        with several); None skips that check.

    Raises:
      ConfigError: listing each bad field with its value and what is allowed.
    """
    missing = [s for s in SECTIONS if s not in config]
    if missing:
        raise ConfigError(
            "bad config:\n  "
            + "\n  ".join(
                f"config.{s} is missing; start from lowrank.config.base_config()." for s in missing
            )
        )
    errors = _library_sections(config)
    errors += _optim_section(config.optim)
    errors += _optimizer_choice(config)
    errors += _train_section(config.train)
    errors += _sweep_section(config, devices)
    errors += _rank_section(config.rank)
    errors += _record_and_checkpoint_sections(config)
    errors += budget.validate_budget(config, None)
    if not errors:
        if num_train is None:
            num_train = data.expected_num_train(config.data)
        if num_train is not None:
            errors += _sizes(config, num_train)
            errors += budget.validate_budget(config, num_train)  # whole batches
    if errors:
        raise ConfigError("bad config:\n  " + "\n  ".join(errors))
