"""One rule for reduced-scale figures, from the theory: reach the forgetting horizon.

The ε-rank can fall only once a direction the gradients stop feeding has shrunk below ε,
i.e. once the forgetting horizon ``h = 2λΣμ_t`` (``lowrank.theory.horizon``) passes
``ln(1/ε)``. A quick run that keeps the paper's λ but takes 100–1000× fewer steps stays far
below it and can show nothing. The rule, the same for every figure:

1. **Target.** Every panel's *claim member* — its member with the largest horizon, the one
   whose rank the claim says falls most — reaches ``h* = target_factor · ln(1/ε)`` at the
   last epoch (default 2 ln(1/ε) ≈ 13.8 at ε = 1e-3: an unfed direction is down to ε²).
2. **Compress λ, within a ceiling.** Every λ of the grid (sweep and panels) is multiplied by
   one factor c (λ = 0 stays 0, so the control stays a control, and the grid's ratios stay
   the paper's). c is capped so that every member's horizon per step (``2μλ``, or
   ``2μλ/(1−β)`` with coupled momentum) stays ≤ ``max_decay_step``: with BatchNorm the
   weights' direction turns by about ``√(2μλ)`` per step at equilibrium, so a
   large 2μλ reaches the horizon by making training noisy, and a network that no longer
   trains has not shown the paper's mechanism. The ceiling scales with the batch size,
   ``max_decay_step · B / reference_batch``: by the linear scaling rule SGD at (μ, B)
   follows about the same path per epoch as at (kμ, kB) (the gradient noise per step is
   ∝ μ²/B), so the per-step decay a member tolerates grows ∝ B, while the horizon per
   epoch, 2μλ·n/B, is the same on both paths.
3. **Then more steps, within the budget.** Where the capped c does not reach h*, the run
   gets more epochs (the fewest that reach it), up to the smallest of ``max_epochs``, the
   figure's compute budget (``max_epochs`` given to :func:`apply` by the config, from a
   measured cost per epoch) and the schedule's first milestone: a quick run is the
   paper's first phase at constant μ, which carries most of its horizon (60 of the 65.3
   μ₀-epochs of the 500-epoch protocol with ×0.1 at 60/100/200), so no milestone is moved
   and none is passed. Where even those epochs do not reach h*, the figure says which
   horizon its claim members reached.

:func:`apply` does this to a quick figure config and returns what it chose, which the
config's ``figure.reduced`` states.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import ml_collections

from lowrank import data, optim, theory
from lowrank.engine.members import members
from lowrank.figures.spec import panel_configs


@dataclasses.dataclass(frozen=True)
class HorizonRule:
    """The rule's three numbers (see the module docstring)."""

    target_factor: float = 2.0  # h* = target_factor · ln(1/ε)
    # The largest horizon per step (2μλ, ÷(1−β) with momentum) a member may have: BatchNorm
    # weights then turn by about √(2e-3) ≈ 0.045 rad per step at equilibrium; probes on
    # ResNet-18 (issue 15) trained normally at 2μλ = 8e-4 and lost accuracy at 4e-3.
    max_decay_step: float = 2e-3
    reference_batch: int = 8  # the batch size of those probes: the ceiling is ∝ B from it
    max_epochs: int = 200  # the most epochs the rule may give a quick run
    records: int = 12  # evaluate and measure about this many times (and at the end)


@dataclasses.dataclass(frozen=True)
class Choice:
    """What :func:`apply` chose: λ factor, epochs, target, and each panel's claim horizon."""

    factor: float
    epochs: int
    target: float
    claim_horizons: tuple[float, ...]

    def describe(self) -> str:
        reached = ", ".join(f"{h:.3g}" for h in self.claim_horizons)
        short = min(self.claim_horizons, default=0.0) < self.target * (1 - 1e-9)
        aim = (
            "aiming at h ≥ {t} = 2 ln(1/ε) (not reached everywhere: the decay ceiling and "
            "the epoch budget bind)"
            if short
            else "so that each panel's claim member reaches h ≥ {t} = 2 ln(1/ε)"
        )
        return (
            f"Horizon rule (lowrank.figures.horizon_rule): every λ × {self.factor:.3g}, "
            f"{self.epochs} epochs, {aim.format(t=f'{self.target:.3g}')}; claim members' "
            f"h per panel: {reached}."
        )


def _panel_configs(config: ml_collections.ConfigDict) -> list[ml_collections.ConfigDict]:
    return [p.config for p in panel_configs(config)]


def claim_horizon(run_config: ml_collections.ConfigDict, epochs: int, factor: float) -> float:
    """The largest horizon a member of ``run_config`` reaches after ``epochs`` epochs with
    every λ multiplied by ``factor``."""
    o = run_config.optim
    n = data.expected_num_train(run_config.data)
    best = 0.0
    for m in members(run_config):
        steps = n // m.batch_size
        mult = optim.multiplier_sum(o.schedule, o.milestones, o.factor, steps, epochs)
        h = theory.horizon(m.learning_rate * mult, factor * m.weight_decay, m.momentum, o.decoupled)
        best = max(best, h)
    return best


def _decay_ceiling(panels: list[ml_collections.ConfigDict], rule: HorizonRule) -> float:
    """The largest λ factor that keeps every member's horizon per step (2μλ, or
    2μλ/(1−β) with coupled momentum) within the rule's ceiling at its batch size."""
    ratios = [
        theory.horizon(m.learning_rate, m.weight_decay, m.momentum, p.optim.decoupled)
        / decay_step_ceiling(rule, m.batch_size)
        for p in panels
        for m in members(p)
    ]
    worst = max(ratios, default=0.0)
    return math.inf if worst == 0 else 1 / worst


def decay_step_ceiling(rule: HorizonRule, batch_size: int) -> float:
    """The largest horizon per step the rule allows a member of this batch size."""
    return rule.max_decay_step * batch_size / rule.reference_batch


def epoch_cap(config: ml_collections.ConfigDict, rule: HorizonRule, budget: int | None) -> int:
    """The most epochs the rule may give: ``rule.max_epochs``, the figure's budget, and the
    schedule's first milestone (the quick run stays in the constant-μ phase)."""
    cap = rule.max_epochs if budget is None else min(rule.max_epochs, budget)
    if config.optim.schedule == "piecewise" and config.optim.milestones:
        cap = min(cap, min(config.optim.milestones))
    return cap


def choose(
    config: ml_collections.ConfigDict, rule: HorizonRule, max_epochs: int | None = None
) -> Choice:
    """The λ factor and epochs the rule gives a figure config (nothing is changed);
    ``max_epochs`` is the figure's compute budget in epochs."""
    panels = _panel_configs(config)
    target = rule.target_factor * theory.horizon_needed(config.figure.epsilon)
    ceiling = _decay_ceiling(panels, rule)

    def factor_for(epochs: int) -> float:  # the λ factor that reaches the target
        weakest = min(claim_horizon(p, epochs, 1.0) for p in panels)
        return _round(target / weakest, up=True) if weakest > 0 else math.inf

    hi = epoch_cap(config, rule, max_epochs)
    lo = min(config.train.epochs, hi)
    if factor_for(hi) > ceiling:  # not even the most epochs: the ceiling, and say so
        epochs, factor = hi, _round(ceiling, up=False)
    else:  # the fewest epochs (h grows with them) whose factor stays under the ceiling
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if factor_for(mid) <= ceiling else (mid + 1, hi)
        epochs, factor = lo, factor_for(lo)
    claims = tuple(claim_horizon(p, epochs, factor) for p in panels)
    return Choice(factor, epochs, target, claims)


def _round(x: float, *, up: bool) -> float:
    """``x`` to 3 significant digits, rounded up or down (so λ values stay readable)."""
    if not math.isfinite(x) or x <= 0:
        return x
    scale = 10 ** (math.floor(math.log10(x)) - 2)
    return (math.ceil(x / scale) if up else math.floor(x / scale)) * scale


def _scaled(value: Any, factor: float) -> Any:
    return tuple(float(f"{float(v) * factor:.6g}") for v in value)


def apply(
    config: ml_collections.ConfigDict,
    rule: HorizonRule | None = None,
    *,
    max_epochs: int | None = None,
) -> Choice:
    """Applies the rule to a quick figure config in place: every λ (the sweep's and the
    panels') times the chosen factor, the chosen epochs; ``figure.reduced`` says so.
    ``max_epochs``: the figure's compute budget in epochs (what fits the 20-minute quick
    budget at the cost per epoch its config states)."""
    rule = rule or HorizonRule()
    choice = choose(config, rule, max_epochs)
    config.sweep.weight_decays = _scaled(config.sweep.weight_decays, choice.factor)
    panels = []
    for p in config.figure.panels:
        p = dict(p, set=dict(p.get("set", {})))
        if "sweep.weight_decays" in p["set"]:
            p["set"]["sweep.weight_decays"] = _scaled(
                p["set"]["sweep.weight_decays"], choice.factor
            )
        panels.append(p)
    config.figure.panels = tuple(panels)
    config.figure.reduced = config.figure.reduced.replace(
        f"{config.train.epochs} epochs instead of", f"{choice.epochs} epochs instead of"
    )
    config.train.epochs = choice.epochs
    if choice.factor != 1:  # the title's λ values are the paper's: say they were scaled
        config.figure.title = f"{config.figure.title}; quick: every λ × {choice.factor:.3g}"
    # Spend the CPU on steps: evaluate and measure ~rule.records times, and at the end.
    every = max(1, round(choice.epochs / rule.records))
    config.train.eval_every = every
    # Norm-ratio and bound figures plot a per-epoch quantity (‖W(t−1)‖/‖W(t)‖ between
    # consecutive measurements; the bound at each epoch): they keep measuring every epoch.
    config.rank.every = 1 if config.figure.kind in ("norm_ratios", "bound") else every
    config.figure.reduced = f"{config.figure.reduced} {choice.describe()}".strip()
    return choice
