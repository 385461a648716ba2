"""Host metrics → per-member records, divergence, and the summary table (all pure).

A record is one member's numbers at one epoch, as written to ``metrics.jsonl``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lowrank import io, theory
from lowrank.engine.members import Member


def theorem33_bounds(
    m_l: dict[str, int], batch_size: int, lr: float, lam: float, epsilons: tuple[float, ...]
) -> dict[str, list[float | None]]:
    """Theorem 3.3's rank bound per layer and ε (None where ε ≥ 1/2, inf where λ = 0)."""

    out: dict[str, list[float | None]] = {}
    for path, m in m_l.items():
        out[path] = [
            float(theory.theorem33_rank_bound(m, batch_size, lr, lam, e)) if e < 0.5 else None
            for e in epsilons
        ]
    return out


def stub_record(
    m: Member, epoch: int, *, multiplier_sum: float, decoupled: bool, optimizer: str = "sgd"
) -> dict:
    """What every record of member ``m`` at ``epoch`` holds: who, when, and the forgetting
    horizon ``h`` reached (``lowrank.theory.horizon``; None under Adam with coupled L2,
    where no direction shrinks by a known factor)."""
    r: dict[str, Any] = {"member": m.id, "group": m.group, **m.hparams(), "epoch": epoch}
    lr_sum = m.learning_rate * multiplier_sum
    r["horizon"] = (
        None
        if optimizer == "adam"
        else theory.horizon(lr_sum, m.weight_decay, m.momentum, decoupled)
    )
    return r


def member_record(
    m: Member,
    k: int,
    epoch: int,
    host: dict[str, Any],
    *,
    lr_multiplier: float,
    multiplier_sum: float,
    decoupled: bool,
    optimizer: str = "sgd",
    m_l: dict[str, int],
    epsilons: tuple[float, ...],
    previous_norms: dict[int, dict[str, float]],
) -> dict[str, Any]:
    """Member ``m``'s record for this epoch, from row ``k`` of the host copy of the metrics.

    ``lr_multiplier``: the schedule's multiplier of μ at this epoch's last step;
    ``multiplier_sum``: the multipliers summed over the steps so far (``μ`` times it is
    ``Σ_t μ_t``, which gives the forgetting horizon). Updates ``previous_norms[m.id]`` (the
    norm ratios of the next epoch divide by it). Theorem 3.3's bound is SGD's (its
    gradients' rank structure): None under ``optimizer`` "adam" or "adamw".
    """
    r = stub_record(
        m, epoch, multiplier_sum=multiplier_sum, decoupled=decoupled, optimizer=optimizer
    )
    r["lr_now"] = m.learning_rate * lr_multiplier
    if "run" in host:
        for name, v in host["run"].items():
            if name != "finite":
                r[f"running_{name}"] = float(v[k])
    for split in ("train", "test"):
        if split in host:
            r[f"{split}_loss"] = float(host[split]["loss"][k])
            r[f"{split}_accuracy"] = float(host[split]["accuracy"][k])
    if "rank" in host:
        ms = host["rank"]
        r.update(measure_fields(ms, k, epsilons))
        norms = {p: float(v[k]) for p, v in ms["frobenius_norm"].items()}
        r["frobenius_norm"] = norms
        prev = previous_norms.get(m.id)
        r["norm_ratio"] = (
            {p: (prev[p] / norms[p] if norms[p] > 0 else math.inf) for p in norms} if prev else None
        )
        previous_norms[m.id] = norms
        r["nonfinite"] = bool(ms["any_nonfinite"][k])
        r["bound"] = (
            theorem33_bounds(m_l, m.batch_size, r["lr_now"], m.weight_decay, epsilons)
            if optimizer == "sgd"
            else None
        )
    if "repr" in host:  # the layers' outputs (lowrank.train.represent)
        r.update(measure_fields(host["repr"], k, epsilons, "repr_", ("stable_rank",)))
    return r


def measure_fields(
    ms: dict[str, Any],
    k: int,
    epsilons: tuple[float, ...],
    prefix: str = "",
    per_layer: tuple[str, ...] = ("numerical_rank", "stable_rank", "entropy_rank"),
) -> dict[str, Any]:
    """Row ``k`` of ``lowrank.rank.measures``' output as record fields, names ``prefix``ed:
    ``avg_rank@ε``, ``avg_{numerical,stable,entropy}_rank``, per layer ``rank`` (one value
    per ε) and the ``per_layer`` measures."""
    avg, per = ms["average"], ms["per_layer"]
    r: dict[str, Any] = {
        f"{prefix}avg_rank@{e:g}": float(avg["threshold_rank"][k][i])
        for i, e in enumerate(epsilons)
    }
    for name in ("numerical_rank", "stable_rank", "entropy_rank"):
        r[f"{prefix}avg_{name}"] = float(avg[name][k])
    r[f"{prefix}rank"] = {p: v[k].tolist() for p, v in per["threshold_rank"].items()}
    for name in per_layer:
        r[f"{prefix}{name}"] = {p: float(v[k]) for p, v in per[name].items()}
    return r


def divergence(host: dict[str, Any], k: int) -> str | None:
    """Why row ``k`` diverged this epoch, or None."""
    run = host.get("run")
    if run is None:
        return None
    if not math.isfinite(float(run["loss"][k])):
        return f"training loss is {float(run['loss'][k])}"
    if not bool(run["finite"][k]):
        return "weights or optimizer state hold NaN/Inf"
    return None


def _horizon_cell(h: float | None) -> str:
    """The forgetting horizon for the table: 3 significant digits, 0 as "0"."""
    return "-" if h is None else f"{h:.3g}"


def summary(records: list[dict[str, Any]], epsilon: float) -> str:
    """Final average rank and accuracy per setting, mean ± std over seeds, with the
    forgetting horizon h reached (the same for every seed); diverged members listed."""
    key = f"avg_rank@{epsilon:g}"
    final: dict[int, dict[str, Any]] = {}
    first: dict[int, dict[str, Any]] = {}
    reasons: dict[int, tuple[dict[str, Any], str]] = {}
    for r in records:
        if r.get("diverged"):
            reasons.setdefault(r["member"], (r, r["reason"]))
        elif key in r:
            first.setdefault(r["member"], r)
            final[r["member"]] = r
    settings: dict[tuple, list[int]] = {}
    for mid, r in final.items():
        if mid not in reasons:
            setting = (r["batch_size"], r["learning_rate"], r["weight_decay"], r["momentum"])
            settings.setdefault(setting, []).append(mid)

    def ms(values: list[float]) -> str:
        a = np.asarray(values, float)
        return f"{a.mean():.2f} ± {a.std():.2f}" if len(a) > 1 else f"{a.mean():.2f}"

    rows = []
    for (b, mu, lam, beta), ids in sorted(settings.items()):
        rows.append(
            [
                b,
                mu,
                lam,
                beta,
                len(ids),
                final[ids[0]]["epoch"],
                _horizon_cell(final[ids[0]].get("horizon")),
                ms([first[i][key] for i in ids]),
                ms([final[i][key] for i in ids]),
                ms([final[i].get("train_accuracy", math.nan) for i in ids]),
                ms([final[i].get("test_accuracy", math.nan) for i in ids]),
            ]
        )
    header = ["B", "mu", "lambda", "beta", "seeds", "epoch", "h", f"rank0@{epsilon:g}",
              f"rank@{epsilon:g}", "train acc", "test acc"]  # fmt: skip
    table = io.format_table(header, rows) if rows else "(no member finished)"
    if reasons:
        lines = [
            f"  member {mid} (seed {r['seed']}, B={r['batch_size']}, mu={r['learning_rate']:g}, "
            f"lambda={r['weight_decay']:g}, beta={r['momentum']:g}) {why}"
            for mid, (r, why) in sorted(reasons.items())
        ]
        table += f"\ndiverged ({len(reasons)}, left out of the table above):\n" + "\n".join(lines)
    return table
