"""What ``experiments/theory_check.py`` reports: one run's lines on the terminal, whether
every measured quantity obeys its bound, and ``summary.md``.

All three read the ``numbers`` the script writes to ``numbers.json`` (runs as dicts).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def report_run(run: Any, res: dict) -> None:
    """Prints one analysed run: identity residuals, Lemma 3.1 ranks, Lemma 3.2 per n."""
    print(f"\n== {run.name}: {run.note}; T={run.steps}, train acc {res['train_accuracy']:.3f}")
    print(f"   identity residual (float32, n={run.window}): "
          f"{max(res['residual_float32'].values()):.2e}")  # fmt: skip
    if run.beta:
        print(f"   paper's SGD identity on this momentum run: residual "
              f"{max(res['residual_sgd_identity'].values()):.2e}")  # fmt: skip
    for p, ly in res["layers"].items():
        print(f"   {p:20s} {tuple(ly['shape'])} m_l={ly['m_l']}: per-sample rank "
              f"{ly['per_sample_rank_max']}≤{ly['m_l']}, minibatch "
              f"{ly['minibatch_rank_window_max']}≤{ly['m_l'] * run.batch_size}")  # fmt: skip
        for n, e in ly["n"].items():
            f, s = e["frobenius"], e["spectral"]
            print(f"     n={n:3d} k={e['k']:5d} rank U={e['rank_U']:4d}  "
                  f"dist_F {f['distance']:.3f} ≤ {f['bound']:.3f}   "
                  f"dist_2 {s['distance']:.3f} ≤ {s['bound']:.3f}")  # fmt: skip


def checks(numbers: dict) -> dict[str, bool]:
    """Whether every measured quantity obeys its bound, over all runs, layers and n."""
    layers = [(res["run"], ly) for res in numbers["runs"].values() for ly in res["layers"].values()]
    ok = {
        "per-sample rank ≤ m_l": all(ly["per_sample_rank_max"] <= ly["m_l"] for _, ly in layers),
        "minibatch rank ≤ B·m_l": all(
            ly["minibatch_rank_window_max"] <= ly["m_l"] * run["batch_size"]
            and ly["minibatch_rank_now"] <= ly["m_l"] * run["batch_size"]
            for run, ly in layers
        ),
        "rank U_{T,n} ≤ m_l·B·n": all(e["rank_U"] <= e["k"] for _, ly in layers
                                      for e in ly["n"].values()),
        "Lemma 3.2 distance ≤ bound": all(
            e[norm]["distance"] <= e[norm]["bound"] * (1 + 1e-6)
            for _, ly in layers for e in ly["n"].values() for norm in ("frobenius", "spectral")
        ),
    }  # fmt: skip
    return ok


SUMMARY_NS = {"mlp": (1, 4, 16, 64), "conv": (1, 2, 4, 16)}  # n shown in summary.md


def summary(numbers: dict) -> str:
    """The results as a short markdown page (all numbers are in numbers.json)."""
    fmt = lambda r, p: f"{r[p]:.1e}" if p in r else "—"
    ok = ", ".join(f"{k}: {'holds' if v else 'FAILS'}" for k, v in checks(numbers).items())
    lines = [
        "# Theory check: the paper's §3 on real runs", "",
        f"Data: {numbers['dataset']}. Total time {numbers['seconds']:.0f} s. Command:", "",
        "    python experiments/theory_check.py --out experiments/results/theory", "",
        f"Checks over all runs, layers and n: {ok}.", "",
        "## Forgetting identity", "",
        "Max over layers of ‖W_T − a_n W_{T−n} − b_n v_{T−n} − U_{T,n}‖_F / ‖W_T‖_F on short",
        "runs that record every step (μ=0.1 then ×0.1 for the last 8 steps, λ=0.05, β=0.9",
        "for the momentum rules; conv float32: the window of the conv run below):", "",
        "| model / rule | float32 | x64 |", "|---|---|---|",
    ]  # fmt: skip
    for key, r in numbers["identity"].items():
        lines.append(f"| {key} | {fmt(r, 'float32')} | {fmt(r, 'x64')} |")
    for name, res in numbers["runs"].items():
        run = res["run"]
        lines += ["", f"## {name}", "", f"{run['note']}. T={run['steps']} steps, B="
                  f"{run['batch_size']}, ×0.1 learning-rate step 8 steps before the end; "
                  f"train accuracy {res['train_accuracy']:.3f}; identity residual over the "
                  f"{run['window']}-step window (float32) "
                  f"{max(res['residual_float32'].values()):.1e}."]  # fmt: skip
        if run["beta"]:
            lines += ["", f"The paper's plain-SGD identity applied to this momentum run leaves "
                      f"a residual of {max(res['residual_sgd_identity'].values()):.2f}; the "
                      f"momentum form closes it. Per-step forgetting rate ρ = "
                      f"{res['forgetting_rate']:.5f}, against 1−2μλ = "
                      f"{1 - 2 * run['mu'] * run['lam']:.5f}."]  # fmt: skip
        lines += ["", "Lemma 3.1 (per-sample ≤ m_l, minibatch ≤ B·m_l, rank U ≤ k) and "
                  "Lemma 3.2 (dist ≤ bound; F = Frobenius, 2 = spectral):", "",
                  "| layer | shape | m_l | per-sample | minibatch | n | k=m_l·B·n | rank U "
                  "| a_n | dist_F | bound_F | dist_2 | bound_2 |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        shown = SUMMARY_NS[run["model"]]
        for p, ly in res["layers"].items():
            for n in shown:
                e = ly["n"][n]
                head = (f"| {p} | {tuple(ly['shape'])} | {ly['m_l']} | "
                        f"{ly['per_sample_rank_max']} | {ly['minibatch_rank_window_max']} |"
                        if n == shown[0] else "| | | | | |")  # fmt: skip
                f, s = e["frobenius"], e["spectral"]
                lines.append(f"{head} {n} | {e['k']} | {e['rank_U']} | {e['a_n']:.4f} | "
                             f"{f['distance']:.3f} | {f['bound']:.3f} | {s['distance']:.3f} | "
                             f"{s['bound']:.3f} |")  # fmt: skip
        if "theorem33" in next(iter(res["layers"].values())):
            eps = np.asarray(numbers["epsilons"])
            idx = [int(np.argmin(np.abs(np.log(eps / e)))) for e in (1e-3, 1e-2, 1e-1, 0.45)]
            head = " | ".join(f"ε={eps[i]:.2g}" for i in idx)
            lines += ["", "Theorem 3.3 (Fig. 18): bound m_l·B·log(2/ε)/(2μλ) / measured ε-rank "
                      "(σ_i/σ_1 > ε):", "", f"| layer | min dim | {head} |",
                      "|---|---|" + "---|" * len(idx)]  # fmt: skip
            for p, ly in res["layers"].items():
                cells = " | ".join(
                    f"{ly['theorem33'][i]:.0f} / {ly['eps_rank_spectral'][i]}" for i in idx
                )
                lines.append(f"| {p} | {min(ly['shape'])} | {cells} |")
    return "\n".join(lines) + "\n"
