"""One rule for reduced-scale figures, from the theory: put the claims inside the horizon window.

The ε-rank can fall only once a direction the gradients stop feeding has shrunk below ε,
i.e. once the forgetting horizon ``h = 2λΣμ_t`` (``lowrank.theory.horizon``) passes
``ln(1/ε)``. A quick run that keeps the paper's λ but takes 100–1000× fewer steps stays far
below it and can show nothing; one that goes far past it shows a network that has stopped
learning. The rule, the same for every figure:

1. **Claim rows and their claim members.** A claim row is a trend of Prediction 4.1 with a
   predicted sign (λ always; μ and B where λ > 0: :func:`lowrank.analysis.trends.groups_of_rows`,
   the rows ``lowrank.analysis.claims`` judges). Its claim member is its member with the
   largest horizon, the one whose rank the claim says falls most. (A figure without claim
   rows — norm ratios, spectra, the bound — takes each panel's largest-h member instead.)
2. **The window.** A row can show the claim when its claim member ends inside
   ``[window[0], window[1]] · ln(1/ε)`` (default [1, 3]·ln(1/ε) ≈ [6.9, 20.7] at
   ε = 1e-3): below ln(1/ε) no rank can have fallen; the upper edge is measured — in the
   first ruled quick figures, members at h ≈ 10–19 kept test accuracy 0.5–0.7 and members
   at h = 30–56 fell to chance with their rank.
3. **One λ factor c, placing as many rows as it can.** Every λ of the grid (sweep and
   panels) is multiplied by one factor c (λ = 0 stays 0, so the control stays a control,
   and the grid's ratios stay the paper's). c is chosen to put the most claim members
   inside the window, and among equal counts the one leaving the widest margin (in log h)
   to the window's edges. One factor cannot place every row where the grid spans more
   than the window (3×): those rows are reported, not hidden.
4. **Two ceilings on c.** Every member's horizon per step (``2μλ``, or ``2μλ/(1−β)`` with
   coupled momentum) stays ≤ ``max_decay_step · B / reference_batch``: with BatchNorm the
   weights' direction turns by about ``√(2μλ)`` per step at equilibrium, so a large 2μλ
   reaches the horizon by making training noisy; by the linear scaling rule SGD at (μ, B)
   follows about the same path per epoch as at (kμ, kB), so the tolerated per-step decay
   grows ∝ B. And every λ stays ≤ ``max_weight_decay`` (0.1, measured): a layer no
   BatchNorm follows (the classifier) settles where its gradient balances 2λW, at a norm
   ∝ 1/λ whatever μ, and runs at λ ≈ 0.2 went to chance with 2μλ inside the ceiling. In a
   network without BatchNorm (the pre-norm ViT) every weight is such a layer, and the
   ceiling is ``max_weight_decay_without_batchnorm``; nor does its tolerated 2μλ grow
   with B (measured on Fig. 10's ViT: at μ = 0.4 it went to chance at 2μλ = 8e-3 at
   B = 32, 64 and 128 alike), so without BatchNorm the 2μλ ceiling is ``max_decay_step``.
5. **Time compression: every μ × one factor k.** h and the per-step decay depend on c·k
   only, and SGD at (kμ, λ) for T steps follows, in the gradient-flow limit, the path of (μ,
   λ) for kT steps; a BatchNorm layer's direction turns by √(2μλ) per step whichever factor
   carries the product. So μ moves where a quick network cannot train at the paper's μ, or
   where λ cannot carry the horizon. Every μ stays ≤ ``max_learning_rate · min(1, B /
   reference_batch)`` (measured on ResNet-18: μ = 1 trained at every B ≥ 8 and not at
   B = 4, where μ = 0.5 did; μ = 1.5 not at B = 8, μ = 2 not at B = 16: the linear scaling
   rule below B = 8, capped at 1), or its model family's ``learning_rate_ceilings``
   (RES-BN and MLP-BN broke below it; measured on Figs. 8 and 7). Where a μ of the grid
   is above its ceiling, k < 1 brings the largest to it and λ carries the rest (same h,
   same 2μλ). Where the λ ceiling stops c before the 2μλ ceiling does, k > 1 — only when
   that places more claim members than λ alone (the classifier is why λ may not carry it
   all, item 4). Only SGD panels compress (an adaptive step is not μ times the gradient).
   Compression keeps h and 2μλ but not the gradient noise, which grows with μ: at equal h,
   the smaller μ lost less ε-rank (Figs. 2, 3 and 8).
6. **The horizon from steps: every epoch the budget allows.** h depends on c and the
   number of steps only through their product, but a step's noise grows with its decay
   (the √(2μλ) turn above), so the rule takes the most epochs it may and the smallest c
   that places the rows: the smallest of ``max_epochs``, the figure's compute budget
   (``max_epochs`` given to :func:`apply` by the config, from a measured cost per epoch)
   and the schedule's first milestone. A quick run is the paper's first phase at constant
   μ, which carries most of its horizon (60 of the 65.3 μ₀-epochs of the 500-epoch
   protocol with ×0.1 at 60/100/200), so no milestone is passed. The milestones are the
   paper's in SGD steps (:func:`lowrank.figures.spec.quick_variant` scales them by the
   ratio of training-set sizes: the paper's first phase is 60 CIFAR-10 epochs, 1500
   epochs of a 2000-image subset), so on a quick variant's small data the budget, not
   the milestone, ends the run (experiments/README.md has the earlier versions, measured).

:func:`apply` does this to a quick figure config and returns what it chose, which the
config's ``figure.reduced`` states.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import ml_collections

from lowrank import data, models, optim, theory
from lowrank.analysis.trends import groups_of_rows
from lowrank.budget import budget_of, epoch_scale
from lowrank.engine.members import Member, members
from lowrank.figures.spec import panel_configs
from lowrank.results import HPARAMS

# A figure config's reduced-scale arguments: "quick" stops at the figure's compute budget
# for a 2-core CPU (about 18 minutes); "long" is the same variant (data, model, grid,
# schedule) with the rule's own epoch cap instead, for a GPU or a patient CPU.
QUICK_ARGS = ("quick", "long")

# A horizon within 1 % of a window edge counts as inside: λ factors are rounded to three
# significant digits, and 1 % of h changes an unfed direction's e^{−h} by 1 % of itself.
EDGE = 0.01


@dataclasses.dataclass(frozen=True)
class HorizonRule:
    """The rule's numbers (see the module docstring)."""

    window: tuple[float, float] = (1.0, 3.0)  # claim members' h, in units of ln(1/ε)
    # The largest horizon per step (2μλ, ÷(1−β) with momentum) a member of batch size
    # reference_batch may have: BatchNorm weights then turn by about √(2e-3) ≈ 0.045 rad
    # per step; probes on ResNet-18 at B = 8 (issue 15) trained normally at 2μλ = 8e-4
    # and lost accuracy at 4e-3.
    max_decay_step: float = 2e-3
    reference_batch: int = 8
    # The largest λ: the ruled quick runs trained at λ ≈ 0.1 (VGG-16, Fig. 17: test
    # accuracy 0.68) and went to chance at λ ≈ 0.2 (Figs. 15, 16) within the 2μλ ceiling.
    max_weight_decay: float = 0.1
    # The same for models without BatchNorm (models.WITHOUT_BATCHNORM), where no layer is
    # scale-invariant: the ViT trained at λ = 0.01 and went to chance at 0.05.
    max_weight_decay_without_batchnorm: float = 0.01
    # The largest μ an SGD member of batch size reference_batch or more may have
    # (× B/reference_batch below it; item 5): μ = 1 trained at B = 8–128 and not at B = 4;
    # μ = 1.5 not at B = 8; μ = 2 not at B = 16 (it did at B ≥ 32).
    max_learning_rate: float = 1.0
    # Families that broke below it: (model, largest μ, from which B; × B/that below it).
    # RES-BN-5-128 (Fig. 8) diverged at μ = 0.1 at B = 4 and 8 (at the paper's λ too) and
    # trained at μ = 0.1 from B = 16 and at μ = 0.05 at B = 4 and 8. MLP-BN-10-100 at
    # B = 4 reached test accuracy 0.27 at μ = 0.3 with λ = 0 and 0.70 at μ = 0.1; μ = 0.3
    # trained from B = 8 (Fig. 7).
    learning_rate_ceilings: tuple[tuple[str, float, int], ...] = (
        ("res_bn", 0.1, 16),
        ("mlp_bn", 0.3, 8),
    )
    max_epochs: int = 200  # the most epochs the rule may give a quick run
    records: int = 12  # evaluate and measure about this many times (and at the end)


# What apply() uses without ``rule``; a what-if may replace it (claim_horizons.py --window).
DEFAULT_RULE = HorizonRule()


@dataclasses.dataclass(frozen=True)
class Choice:
    """What :func:`apply` chose: λ factor, epochs, the window (in h) and each claim row's
    claim-member horizon (per panel where the figure has no claim rows)."""

    factor: float
    epochs: int
    window: tuple[float, float]
    claim_horizons: tuple[float, ...]
    per_panel: bool = False
    window_factors: tuple[float, float] = (1.0, 3.0)  # the window in units of ln(1/ε)
    lr_factor: float = 1.0  # every μ's factor (time compression, item 5)

    def scaling(self) -> str:
        """'every λ × c', and ', every μ × k' where time compression was used."""
        lr = "" if self.lr_factor == 1 else f", every μ × {self.lr_factor:.3g}"
        return f"every λ × {self.factor:.3g}{lr}"

    @property
    def placed(self) -> int:
        return _placement(list(self.claim_horizons), 0.0, self.window)[0]

    def describe(self) -> str:
        lo, hi = self.window
        what = "panels' largest-h members" if self.per_panel else "claim rows' claim members"
        reached = ", ".join(f"{h:.3g}" for h in sorted(self.claim_horizons))
        return (
            f"Horizon rule (lowrank.figures.horizon_rule): {self.scaling()}, "
            f"{self.epochs} epochs; {self.placed} of {len(self.claim_horizons)} {what} end "
            f"inside the window h ∈ [{lo:.3g}, {hi:.3g}] = [{self.window_factors[0]:g}, "
            f"{self.window_factors[1]:g}]·ln(1/ε) (h: {reached})."
        )


def _panel_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    return [p.config for p in panel_configs(config)]


def member_horizon(
    run_config: ml_collections.ConfigDict, m: Member, epochs: int, factor: float = 1.0
) -> float:
    """The horizon member ``m`` of ``run_config`` reaches after ``epochs`` epochs with its
    λ multiplied by ``factor``."""
    k = epoch_scale(run_config, m.batch_size)  # train.budget="steps": epochs ∝ B
    o = run_config.optim
    steps = data.expected_num_train(run_config.data) // m.batch_size
    milestones = tuple(int(e) * k for e in o.milestones)
    mult = optim.multiplier_sum(o.schedule, milestones, o.factor, steps, epochs * k)
    return theory.horizon(m.learning_rate * mult, factor * m.weight_decay, m.momentum, o.decoupled)


def claim_rows(
    panels: list[ml_collections.ConfigDict],
) -> list[list[tuple[ml_collections.ConfigDict, Member]]]:
    """The members of each claim row of the figure (the rows ``lowrank.analysis.claims``
    judges), from the configs alone."""
    rows = [
        {
            **{h: getattr(m, h) for h in HPARAMS},
            "seed": m.seed,
            "dataset": str(p.data.name),
            "optimizer": str(p.optim.get("name", "sgd")),
            "budget": budget_of(p),
            "entry": (p, m),
        }
        for p in panels
        for m in members(p)
    ]
    return [[r["entry"] for r in g.rows] for g in groups_of_rows(rows) if g.predicted in (-1, 1)]


def _decay_ceiling(panels: list[ml_collections.ConfigDict], rule: HorizonRule) -> float:
    """The largest λ factor that keeps every member's horizon per step (2μλ, or
    2μλ/(1−β) with coupled momentum) within the rule's ceiling at its batch size."""
    ratios = [
        theory.horizon(m.learning_rate, m.weight_decay, m.momentum, p.optim.decoupled)
        / decay_step_ceiling(rule, m.batch_size, str(p.model.name) not in models.WITHOUT_BATCHNORM)
        for p in panels
        for m in members(p)
    ]
    worst = max(ratios, default=0.0)
    return math.inf if worst == 0 else 1 / worst


def decay_step_ceiling(rule: HorizonRule, batch_size: int, batchnorm: bool = True) -> float:
    """The largest horizon per step the rule allows a member of this batch size: growing
    ∝ B with BatchNorm, ``max_decay_step`` at every B without it (item 4)."""
    if not batchnorm:
        return rule.max_decay_step
    return rule.max_decay_step * batch_size / rule.reference_batch


def epoch_cap(config: ml_collections.ConfigDict, rule: HorizonRule, budget: int | None) -> int:
    """The most epochs the rule may give: ``rule.max_epochs``, the figure's budget, and the
    schedule's first milestone (the quick run stays in the constant-μ phase; a quick
    variant's milestones are the paper's in steps, see item 6)."""
    cap = rule.max_epochs if budget is None else min(rule.max_epochs, budget)
    if config.optim.schedule == "piecewise" and config.optim.milestones:
        cap = min(cap, min(config.optim.milestones))
    return cap


def _placement(units: list[float], log_factor: float, window: tuple[float, float]):
    """(rows inside the window, their smallest log-margin to its edges) at factor e^s; with
    no row inside, (0, minus the log-distance of the nearest row): closer is better."""
    a, b = (math.log(w) for w in window)
    xs = [math.log(u) + log_factor for u in units if u > 0]
    inside = [min(x - a, b - x) for x in xs if x - a >= -EDGE and x - b <= EDGE]
    if not inside:
        return 0, round(-min((max(a - x, x - b) for x in xs), default=math.inf), 6)
    return len(inside), round(min(inside), 6)


def _best_factor(units: list[float], window: tuple[float, float], most: float):
    """The factor ≤ ``most`` that places the most rows in the window, with the widest
    margin: ((count, margin), factor). The optimum centres some run of rows in the window."""
    a, b = (math.log(w) for w in window)
    xs = sorted(math.log(u) for u in units if u > 0)
    if not xs:
        return (0, 0.0), 1.0
    cap = math.log(most) if math.isfinite(most) else math.inf
    candidates = {cap} if math.isfinite(cap) else set()
    for i, lo in enumerate(xs):
        for hi in xs[i:]:
            if hi - lo <= b - a + 2 * EDGE:  # fits (rows exactly 3× apart included)
                candidates.add(min(cap, (a + b) / 2 - (lo + hi) / 2))
    best = max(candidates, key=lambda s: (_placement(units, s, window), -s))
    return _placement(units, best, window), math.exp(best)


def most_placeable(horizons: list[float], window: tuple[float, float] = (1.0, 3.0)) -> int:
    """The most of these claim-member horizons that one λ factor (and any number of epochs)
    could put inside a window of the given edges (only their ratio matters): the bound the
    grid's own ratios set on the rule, before any ceiling or budget."""
    return _best_factor([h for h in horizons if h > 0], window, math.inf)[0][0]


def _weight_decay_ceiling(panels: list[ml_collections.ConfigDict], rule: HorizonRule) -> float:
    """The largest λ any member may have: lower where a model has no BatchNorm (item 4)."""
    if any(str(p.model.name) in models.WITHOUT_BATCHNORM for p in panels):
        return rule.max_weight_decay_without_batchnorm
    return rule.max_weight_decay


def learning_rate_ceiling(rule: HorizonRule, model: str, batch_size: int) -> float:
    """The largest μ the rule allows an SGD member of this model and batch size (item 5):
    ``max_learning_rate · min(1, B / reference_batch)``, or the model's own entry of
    ``learning_rate_ceilings``."""
    top, reference = rule.max_learning_rate, rule.reference_batch
    for name, mu, batch in rule.learning_rate_ceilings:
        if name == model:
            top, reference = mu, batch
    return top * min(1.0, batch_size / reference)


def _learning_rate_room(panels: list[ml_collections.ConfigDict], rule: HorizonRule) -> float:
    """The largest μ factor time compression may use: every μ within its
    :func:`learning_rate_ceiling`; 1 where a panel is not plain SGD (an adaptive step is
    not μ times the gradient). Below 1 where a μ of the grid is above its ceiling."""
    if any(str(p.optim.get("name", "sgd")) != "sgd" for p in panels):
        return 1.0
    return min(
        learning_rate_ceiling(rule, str(p.model.name), m.batch_size) / m.learning_rate
        for p in panels
        for m in members(p)
    )


def _factors(
    units: list[float], window: tuple[float, float], decay: float, lam: float, lr_room: float
) -> tuple[float, float]:
    """(λ factor c, μ factor k) for rows of horizons ``units`` at c = k = 1, under the
    2μλ ceiling ``decay`` on c·k, the λ ceiling ``lam`` on c and the μ room ``lr_room`` on
    k (items 3–5): k < 1 only to bring every μ under its ceiling, k > 1 only where λ stops
    first and μ then places more rows."""
    k = _round_down(min(1.0, lr_room))
    (count, _), total = _best_factor(units, window, min(decay, lam * k))
    if lam * k < decay and lr_room > 1:  # λ stops first: try μ past it
        (more, _), more_total = _best_factor(units, window, min(decay, lam * lr_room))
        if more > count:
            c = _round_down(lam)
            return c, _round_down(more_total / c)
    return (_round_down(total / k) if math.isfinite(total) else 1.0), k


def choose(
    config: ml_collections.ConfigDict, rule: HorizonRule, max_epochs: int | None = None
) -> Choice:
    """The λ and μ factors and epochs the rule gives a figure config (nothing is changed);
    ``max_epochs`` is the figure's compute budget in epochs."""
    panels = _panel_configs(config)
    ln = theory.horizon_needed(config.figure.epsilon)
    window = (rule.window[0] * ln, rule.window[1] * ln)
    largest_decay = max(max(p.sweep.weight_decays) for p in panels)
    lam_ceiling = _weight_decay_ceiling(panels, rule) / largest_decay if largest_decay else math.inf
    decay_ceiling = _decay_ceiling(panels, rule)
    rows = claim_rows(panels)
    per_panel = not rows  # norm ratios, spectra, the bound: each panel's largest-h member
    if per_panel:
        rows = [[(p, m) for m in members(p)] for p in panels]

    epochs = epoch_cap(config, rule, max_epochs)  # the horizon from steps (item 6)
    units = [max(member_horizon(p, m, epochs) for p, m in row) for row in rows]  # at c = 1
    lr_room = _learning_rate_room(panels, rule)
    factor, lr_factor = _factors(units, window, decay_ceiling, lam_ceiling, lr_room)
    horizons = tuple(u * factor * lr_factor for u in units)
    return Choice(
        factor, epochs, window, horizons, per_panel, tuple(rule.window), lr_factor=lr_factor
    )


def budget(arg: str, cpu_epochs: int) -> int | None:
    """The compute budget in epochs for a figure config's argument ``arg`` (one of
    :data:`QUICK_ARGS`): ``cpu_epochs`` for "quick", none (the rule's cap) for "long"."""
    if arg not in QUICK_ARGS:
        raise ValueError(f"unknown reduced-scale argument {arg!r}; use one of {QUICK_ARGS}.")
    return None if arg == "long" else cpu_epochs


def _round_down(x: float) -> float:
    """``x`` rounded down to 3 significant digits (readable λ values, still ≤ the ceiling)."""
    if x <= 0:
        return x
    scale = 10 ** (math.floor(math.log10(x)) - 2)
    return math.floor(x / scale) * scale


def _scaled(value: Any, factor: float) -> Any:
    return tuple(float(f"{float(v) * factor:.6g}") for v in value)


def _scale_panels(panels: Any, key: str, factor: float) -> tuple[dict, ...]:
    """The figure's panels with each one's own ``key`` values (if it sets them) × factor."""
    scaled = []
    for p in panels:
        p = dict(p, set=dict(p.get("set", {})))
        if key in p["set"]:
            p["set"][key] = _scaled(p["set"][key], factor)
        scaled.append(p)
    return tuple(scaled)


def apply(
    config: ml_collections.ConfigDict,
    rule: HorizonRule | None = None,
    *,
    max_epochs: int | None = None,
) -> Choice:
    """Applies the rule to a quick figure config in place: every λ (the sweep's and the
    panels') times the chosen factor, every μ times the time compression's (1 unless a μ
    is above its ceiling or λ's ceiling binds), the chosen epochs; ``figure.reduced`` says
    so. ``max_epochs``: the figure's compute budget in epochs (what fits the 20-minute
    quick budget at the cost per epoch its config states)."""
    rule = rule or DEFAULT_RULE
    choice = choose(config, rule, max_epochs)
    if max_epochs is None:  # the rule's own cap: the "long" variant (a GPU's), not the CPU's
        config.figure.scale = "long"
    for key, factor in (("weight_decays", choice.factor), ("learning_rates", choice.lr_factor)):
        config.sweep[key] = _scaled(config.sweep[key], factor)
        config.figure.panels = _scale_panels(config.figure.panels, f"sweep.{key}", factor)
    reduced = config.figure.reduced.replace(
        f"{config.train.epochs} epochs instead of", f"{choice.epochs} epochs instead of"
    )  # and where that is the paper's own length, it is no reduction:
    config.figure.reduced = reduced.replace(
        f" {choice.epochs} epochs instead of {choice.epochs};", ""
    )
    config.train.epochs = choice.epochs
    if choice.factor != 1 or choice.lr_factor != 1:  # the title's values are the paper's
        config.figure.title = f"{config.figure.title}; {config.figure.scale}: {choice.scaling()}"
    # Spend the CPU on steps: evaluate and measure ~rule.records times, and at the end.
    every = max(1, round(choice.epochs / rule.records))
    config.train.eval_every = every
    # Norm-ratio and bound figures plot a per-epoch quantity (‖W(t−1)‖/‖W(t)‖ between
    # consecutive measurements; the bound at each epoch): they keep measuring every epoch.
    config.rank.every = 1 if config.figure.kind in ("norm_ratios", "bound") else every
    config.figure.reduced = f"{config.figure.reduced} {choice.describe()}".strip()
    return choice
