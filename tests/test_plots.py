"""Figures from results folders: synthetic folders of every kind, and one tiny real run."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lowrank import figures, io
from lowrank.analysis import series as series_lib
from lowrank.analysis import trends as trend_lib
from lowrank.config import base_config
from lowrank.config_files import load_config_file, load_module
from lowrank.figures import layer_plots, plots
from lowrank.results import load_results

LAYERS = {"dense_0/kernel": (16, 64), "dense_1/kernel": (16, 16), "classifier/kernel": (10, 16)}


def bound(m: dict, eps: float) -> float:
    """Theorem 3.3's bound with m_l = 1."""
    return m["batch_size"] * math.log(2 / eps) / (2 * m["learning_rate"] * m["weight_decay"])


def _write_panel(
    folder: Path,
    grid: list[dict],
    *,
    epochs: int = 3,
    epsilons: tuple[float, ...] = (1e-3, 0.1),
    rank_of=None,
    stable_rank_of=None,
    accuracy_of=None,
) -> None:
    """A sweep results folder: members.json, config.json, metrics.jsonl and spectra."""
    folder.mkdir(parents=True)
    rank_of = rank_of or (lambda m, e: 16.0 - 100 * m["weight_decay"] * e - 0.1 * m["seed"])
    stable_rank_of = stable_rank_of or (lambda m, e: 4.0 - 0.5 * e * m["learning_rate"])
    batch_sizes = sorted({g["batch_size"] for g in grid})
    members = []
    for g in grid:
        members.append({"id": len(members), "group": batch_sizes.index(g["batch_size"]), **g})
    cfg = base_config("mlp_bn")
    cfg.rank.epsilons = epsilons
    io.atomic_write_text(folder / "config.json", cfg.to_json_best_effort())
    io.atomic_write_text(folder / "members.json", json.dumps(members))
    io.atomic_write_text(folder / "structure.json", json.dumps({"m_l": dict.fromkeys(LAYERS, 1)}))
    records = []
    for e in range(epochs + 1):
        for m in members:
            r = {"member": m["id"], **{k: m[k] for k in m if k not in ("id",)}, "epoch": e}
            r["lr_now"] = m["learning_rate"]
            r["horizon"] = 2 * m["weight_decay"] * m["learning_rate"] * 100 * e
            for eps in epsilons:
                r[f"avg_rank@{eps:g}"] = rank_of(m, e) - 2 * eps
            r["avg_stable_rank"] = stable_rank_of(m, e)
            r["train_accuracy"] = 0.5 + 0.1 * e
            r["test_accuracy"] = accuracy_of(m, e) if accuracy_of else 0.45 + 0.1 * e
            r["frobenius_norm"] = {p: 10.0 + e for p in LAYERS}
            r["norm_ratio"] = None if e == 0 else {p: (9.0 + e) / (10.0 + e) for p in LAYERS}
            r["bound"] = {
                p: [
                    bound(m, eps) if eps < 0.5 and m["weight_decay"] > 0 else None
                    for eps in epsilons
                ]
                for p in LAYERS
            }
            records.append(r)
    io.append_jsonl(folder / "metrics.jsonl", records)
    for g in range(len(batch_sizes)):
        in_group = [m for m in members if m["group"] == g]
        sv = {
            p: np.stack([np.geomspace(1.0, 1e-3 * (k + 1), min(s)) for k in range(len(in_group))])
            for p, s in LAYERS.items()
        }
        io.save_npz(folder / "spectra" / f"group{g}_epoch{epochs:04d}.npz", sv)


def _member(seed=0, lr=0.1, wd=1e-3, mom=0.0, b=16) -> dict:
    return {"seed": seed, "learning_rate": lr, "weight_decay": wd, "momentum": mom, "batch_size": b}


def _figure(
    folder: Path,
    kind: str,
    vary: list[str],
    panels: list[tuple[str, list[dict]]],
    panel_vary: list[list[str]] | None = None,
    **panel_kw,
) -> Path:
    """A figure results folder: figure.json and one synthetic sweep folder per panel."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "number": 6,
        "kind": kind,
        "vary": vary,
        "epsilon": 1e-3,
        "scale": "quick",
        "title": "synthetic",
        "reduced": "",
        "panels": [
            {"name": f"panel{i}", "label": label, "set": {},
             "vary": panel_vary[i] if panel_vary else vary}
            for i, (label, _) in enumerate(panels)
        ],
    }  # fmt: skip
    (folder / "figure.json").write_text(json.dumps(manifest))
    for i, (_, grid) in enumerate(panels):
        _write_panel(folder / f"panel{i}", grid, **panel_kw)
    return folder


def _lambda_panels(batch_sizes=(4, 8, 16), lams=(0.0, 1e-3, 1e-2), seeds=(0, 1, 2)):
    return [
        (f"B={b}", [_member(seed=s, wd=lam, b=b) for lam in lams for s in seeds])
        for b in batch_sizes
    ]


def test_curves_layout_and_png(tmp_path):
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], _lambda_panels())
    results = load_results(folder)
    fig = plots.plot_curves(results)
    axes = fig.axes
    assert len(axes) == 6  # 2 rows × 3 panels
    top = axes[:3]
    assert [a.get_title() for a in top] == ["B=4", "B=8", "B=16"]
    # One line per λ in the top row, train + test per λ in the bottom row.
    assert all(len(a.get_lines()) == 3 for a in top)
    assert all(len(a.get_lines()) == 6 for a in axes[3:])
    assert [t.get_text() for t in top[0].get_legend().get_texts()] == [
        "λ=0", "λ=0.001", "λ=0.01",
    ]  # fmt: skip
    # Shaded spread over 3 seeds: one PolyCollection per line.
    assert len(top[0].collections) == 3
    png = plots.draw(folder)
    assert png == folder / "fig06.png" and png.stat().st_size > 5000


def test_rank_against_horizon(tmp_path):
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], _lambda_panels((4, 8)))
    results = load_results(folder)
    fig = plots.plot_rank_vs_horizon(results)
    assert len(fig.axes) == 4  # rank and accuracy rows × 2 panels
    top = fig.axes[0]
    # One line per member (3 λ × 3 seeds), x = each record's horizon, y = its ε-rank.
    assert len(top.get_lines()) == 9 + 1  # and the h = ln(1/ε) marker
    p = results.panels[0]
    member = p.member_records()[min(p.member_records())]
    line = next(ln for ln in top.get_lines() if len(ln.get_xdata()) == len(member))
    assert list(line.get_xdata()) == [r["horizon"] for r in member]
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["λ=0", "λ=0.001", "λ=0.01"]
    png = plots.draw(folder, against="horizon")
    assert png == folder / "fig06_horizon.png" and png.stat().st_size > 5000
    with pytest.raises(ValueError, match="against='time'"):
        plots.draw(folder, against="time")


def test_other_rank_measures_are_drawn_from_their_own_metric(tmp_path):
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], _lambda_panels((4, 8)))
    results = load_results(folder)
    fig = plots.plot_curves(results, measure="stable")
    top = fig.axes[0]
    assert "stable rank" in top.get_ylabel()
    # The stable rank of the synthetic members is 4 − 0.05·epoch (μ = 0.1), whatever λ.
    for line in top.get_lines():
        np.testing.assert_allclose(line.get_ydata(), [4.0 - 0.05 * e for e in range(4)])
    png = plots.draw(folder, measure="stable")
    assert png == folder / "fig06_stable.png" and png.stat().st_size > 5000
    assert not (folder / "fig06.png").exists()
    with pytest.raises(ValueError, match=r"unknown rank measure 'stabel'.*'stable'"):
        plots.draw(folder, measure="stabel")


def test_series_mean_and_std_over_seeds(tmp_path):
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], _lambda_panels((4,)))
    p = load_results(folder).panels[0]
    lines = series_lib.series(p, "avg_rank@0.001")
    assert [s.setting for s in lines] == [(0.0,), (1e-3,), (1e-2,)]
    s = lines[2]
    expected = [16.0 - 1.0 * e - 0.1 * np.array([0, 1, 2]) - 2e-3 for e in range(4)]
    np.testing.assert_allclose(s.mean, [x.mean() for x in expected])
    np.testing.assert_allclose(s.std, [x.std() for x in expected])
    assert s.seeds == 3


def test_trends_signs_and_small_effect_at_zero_decay(tmp_path):
    # Rank falls with λ within panels; across panels it rises with B, except at λ = 0.
    def rank_of(m, e):
        return 16 - 300 * m["weight_decay"] * e / m["batch_size"] ** 0.5 + 0.01 * m["seed"]

    panels = _lambda_panels()
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], panels, rank_of=rank_of)
    found = trend_lib.trends(load_results(folder))
    lam = [t for t in found if t.hparam == "weight_decay"]
    assert len(lam) == 3 and all(t.rho_mean == -1.0 and t.predicted == -1 for t in lam)
    b = {t.fixed["weight_decay"]: t for t in found if t.hparam == "batch_size"}
    assert set(b) == {0.0, 1e-3, 1e-2}
    assert b[1e-2].rho_mean == 1.0 and b[1e-2].predicted == 1
    assert math.isnan(b[0.0].rho_mean) and b[0.0].predicted == 0  # constant rank: no ρ
    table = trend_lib.trend_table(found)
    assert "negative" in table and "≈ 0 (λ = 0)" in table


def test_claim_rows_need_every_seed_the_sign_a_5_percent_move_and_accuracy(tmp_path):
    from lowrank.analysis import claims

    def rank_of(m, e):
        return 16 - 300 * m["weight_decay"] * e / m["batch_size"] ** 0.5 + 0.01 * m["seed"]

    def accuracy_of(m, e):  # the B = 4, λ = 1e-2 networks stop learning
        return 0.1 if (m["batch_size"], m["weight_decay"]) == (4, 1e-2) else 0.7

    folder = _figure(
        tmp_path / "fig", "curves", ["weight_decay"], _lambda_panels(),
        rank_of=rank_of, accuracy_of=accuracy_of,
    )  # fmt: skip
    # Seed 2 of B = 8, λ = 1e-2 diverges at epoch 3, which was not an evaluation epoch:
    # its last rank (epoch 2) must not count as a final rank.
    path = folder / "panel1" / "metrics.jsonl"
    records = io.read_jsonl(path)
    for r in records:
        if r["epoch"] == 3 and r["seed"] == 2 and r["weight_decay"] == 1e-2:
            for key in [k for k in r if k.startswith(("avg_", "test_", "train_"))]:
                del r[key]
            r.update(diverged=True, reason="diverged at epoch 3: training loss is nan")
    path.unlink()
    io.append_jsonl(path, records)
    found, controls = claims.claim_rows(load_results(folder))
    verdict = {(c.trend.hparam, *c.trend.fixed.values()): c for c in found}
    assert verdict[("weight_decay", 16)].shown  # 16 → 13.75: 14 %, accuracy 0.7
    expected_h = [2 * lam * 0.1 * 100 * 3 for lam in (0.0, 1e-3, 1e-2)]  # the records' h
    assert verdict[("weight_decay", 16)].horizons == pytest.approx(expected_h)
    assert "test accuracy 0.10 < 0.3" in verdict[("weight_decay", 4)].why
    assert verdict[("weight_decay", 8)].why == "a seed diverged"
    assert "rank moves" in verdict[("batch_size", 1e-3)].why  # 15.55 → 15.78: 1.4 %
    assert [c.trend.fixed for c in controls] == [{"weight_decay": 0.0}]
    table = claims.claims_table(found, controls)
    assert table.startswith(f"Claim rows shown: {sum(c.shown for c in found)} of {len(found)}")


def test_decay_ratio_against_the_no_decay_control(tmp_path):
    # Training alone lowers the stable rank, more for larger μ and smaller B; decay
    # multiplies it by a factor that is smaller for larger λ and smaller B. The ratio to
    # the λ = 0 run isolates that factor, whatever training and the seed do.
    def stable(m, e):
        training = 4.0 - 0.5 * e * m["learning_rate"] - 0.1 * m["seed"] + 0.05 * m["batch_size"]
        return training * (1 - 20 * m["weight_decay"] * e / m["batch_size"] ** 0.5)

    panels = _lambda_panels(lams=(0.0, 1e-3, 3e-3, 1e-2))
    panels.append(("B=32", [_member(seed=s, wd=1e-3, b=32) for s in (0, 1, 2)]))  # no λ = 0
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], panels, stable_rank_of=stable)
    results = load_results(folder)
    rows = trend_lib.decay_ratio_table(results, "avg_stable_rank")
    assert len(rows) == 3 * 3 * 3  # B ∈ {4, 8, 16} × λ > 0 × seeds; B = 32 has no control
    for r in rows:
        assert r["value"] == pytest.approx(1 - 60 * r["weight_decay"] / r["batch_size"] ** 0.5)
    found = trend_lib.decay_trends(results, "avg_stable_rank")
    lam = [t for t in found if t.hparam == "weight_decay"]
    b = [t for t in found if t.hparam == "batch_size"]
    assert len(lam) == 3 and all(t.rho_mean == -1.0 for t in lam)
    assert len(b) == 3 and all(t.rho_mean == 1.0 and t.predicted == 1 for t in b)
    assert "decay ratio (low → high value)" in trend_lib.trend_table(found, "decay ratio")
    # Without the control, the B trend shows at λ = 0 as well: training's, not decay's.
    plain = [t for t in trend_lib.trends(results, "avg_stable_rank") if t.hparam == "batch_size"]
    assert next(t for t in plain if t.fixed["weight_decay"] == 0).rho_mean == 1.0
    # Without λ = 0 members there is nothing to divide by.
    no_control = _figure(
        tmp_path / "fig2", "curves", ["weight_decay"], _lambda_panels(lams=(1e-3, 1e-2))
    )
    assert trend_lib.decay_ratio_table(load_results(no_control), "avg_stable_rank") == []


def test_spearman_ties_and_constants():
    assert trend_lib.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert trend_lib.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert trend_lib.spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(0.894427, abs=1e-6)
    assert math.isnan(trend_lib.spearman([1, 2, 3], [5, 5, 5]))
    assert trend_lib.spearman([1, 2, 3, 4], [1, float("nan"), 3, 4]) == pytest.approx(1.0)


def test_heatmaps(tmp_path):
    grid_a = [_member(seed=s, lr=lr, wd=wd, b=8) for lr in (0.1, 0.5) for wd in (0, 1e-3, 5e-3)
              for s in (0, 1)]  # fmt: skip
    grid_c = [_member(seed=s, lr=0.5, wd=wd, b=b) for b in (8, 16) for wd in (0, 1e-3)
              for s in (0, 1)]  # fmt: skip
    folder = _figure(
        tmp_path / "fig1",
        "heatmap",
        ["learning_rate", "weight_decay"],
        [("(a) B=8", grid_a), ("(c) μ=0.5", grid_c)],
        panel_vary=[["learning_rate", "weight_decay"], ["batch_size", "weight_decay"]],
    )
    results = load_results(folder)
    fig = plots.plot_heatmaps(results)
    maps = [a for a in fig.axes if a.get_images()]
    assert len(maps) == 2
    assert maps[0].get_images()[0].get_array().shape == (3, 2)  # λ rows × μ columns
    assert maps[1].get_images()[0].get_array().shape == (2, 2)
    assert maps[1].get_xlabel() == "B"
    assert plots.draw(folder).exists()
    # One colour scale for all panels: the same value has the same colour everywhere.
    scales = {m.get_images()[0].get_clim() for m in maps}
    assert len(scales) == 1
    lo, hi = scales.pop()
    every = np.concatenate([m.get_images()[0].get_array().compressed() for m in maps])
    assert (lo, hi) == pytest.approx((every.min(), every.max()))
    # Ranks below 100 are written with one decimal.
    fig = plots.plot_heatmaps(results, measure="stable")
    first = next(a for a in fig.axes if a.get_images())
    final = [4.0 - 0.5 * 3 * lr for lr in (0.1, 0.5)]  # the synthetic stable rank at epoch 3
    assert {t.get_text() for t in first.texts} == {f"{v:.1f}" for v in final}
    np.testing.assert_allclose(first.get_images()[0].get_array()[0], final)


def test_norm_ratios_spectra_and_bound(tmp_path):
    ratios = _figure(
        tmp_path / "fig14",
        "norm_ratios",
        ["learning_rate"],
        [(f"μ={lr}", [_member(seed=s, lr=lr, b=8) for s in (0, 1)]) for lr in (0.1, 0.5, 1.0)],
    )
    fig = layer_plots.plot_norm_ratios(load_results(ratios))
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 3
    assert len(visible[0].get_lines()) == len(LAYERS) + 1  # one per layer + the line at 1

    spectra = _figure(
        tmp_path / "fig16",
        "spectra",
        ["batch_size"],
        [("", [_member(seed=s, b=b) for b in (8, 16, 32) for s in (0, 1)])],
    )
    fig = layer_plots.plot_spectra(load_results(spectra))
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == len(LAYERS)
    assert all(len(a.get_lines()) == 3 for a in visible)  # one line per batch size
    assert visible[0].get_yscale() == "log"

    bound = _figure(
        tmp_path / "fig18",
        "bound",
        ["batch_size"],
        [("B=6", [_member(seed=s, lr=0.1, wd=8e-3, b=6) for s in (0, 1)])],
        epsilons=(1e-3, 0.1, 0.3),
    )
    results = load_results(bound)
    grid = np.asarray([0.01, 0.3])
    curve = layer_plots.bound_curve(results.panels[0], grid)["initial"]
    np.testing.assert_allclose(curve, 6 * np.log(2 / grid) / (2 * 0.1 * 8e-3))
    fig = layer_plots.plot_bound(results)
    assert len(fig.axes) == 3
    assert plots.draw(bound).name == "fig06.png"
    with pytest.raises(ValueError, match="plots no average rank"):
        plots.draw(bound, measure="stable")


def test_plain_sweep_folder_draws_as_one_panel(tmp_path):
    _write_panel(tmp_path / "sweep", [_member(seed=s, wd=w) for w in (0, 1e-2) for s in (0, 1)])
    results = load_results(tmp_path / "sweep")
    assert results.kind == "curves" and results.panels[0].vary == ("weight_decay",)
    assert plots.draw(tmp_path / "sweep").name == "figure.png"


def test_missing_results_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a results folder"):
        load_results(tmp_path)


@functools.cache  # its absl flags can be defined once per process
def _load_figure_script():
    return load_module(Path(__file__).resolve().parent.parent / "experiments" / "figure.py")


@pytest.mark.slow
def test_figure_command_end_to_end_on_digits(tmp_path):
    """A one-panel figure on scikit-learn's digits: sweep, figure.json, PNG, trends."""
    script = _load_figure_script()
    c = base_config("mlp_bn")
    c.model.width, c.model.depth = 8, 1
    c.data.name, c.data.source = "digits", "sklearn"
    c.augment.crop = c.augment.flip = c.augment.rotate = False
    c.train.epochs = 1
    c.train.eval_batch_size = 512
    c.sweep.weight_decays = (0.0, 1e-3, 3e-3, 1e-2)
    c.rank.spectra_every = 0
    c.checkpoint.every = 0
    c.figure = figures.figure_section(
        6,
        "curves",
        "weight_decay",
        [figures.panel("B=128", {"sweep.batch_sizes": (128,)})],
        scale="quick",
        title="tiny",
    )
    out = tmp_path / "fig"
    script.run_panels(c, out, None, progress=False, restart=False)
    text = script.report(out)
    assert (out / "fig06.png").exists() and "Spearman" in text
    assert "negative" in (out / "trends.txt").read_text()  # the λ row's prediction
    records = io.read_jsonl(out / "panel0" / "metrics.jsonl")
    assert {r["batch_size"] for r in records} == {128} and len(records) == 4 * 2
    # Both measures are tabulated: the ε-rank first, then the stable rank, each from the
    # members' own final values (a narrow MLP's stable rank is well below its ε-rank).
    assert "stable rank" in (out / "trends.txt").read_text()
    assert (out / "fig06_stable.png").exists()
    both = json.loads((out / "trends.json").read_text())
    assert list(both) == [
        "avg_rank@0.001", "avg_stable_rank", "avg_rank@0.001 / λ=0", "avg_stable_rank / λ=0",
        "claims",
    ]  # fmt: skip
    assert (out / "trends.txt").read_text().startswith("Prediction 4.1 on the ε-rank")
    assert {c["trend"]["hparam"] for c in both["claims"]} == {"weight_decay"}
    # The decay ratios: each λ > 0 run's final stable rank over the λ = 0 run's.
    (ratio_trend,) = both["avg_stable_rank / λ=0"]
    stable = {r["weight_decay"]: r["avg_stable_rank"] for r in records if r["epoch"] == 1}
    expected = [stable[lam] / stable[0.0] for lam in (1e-3, 3e-3, 1e-2)]
    np.testing.assert_allclose(ratio_trend["mean_rank"], expected, rtol=1e-5)
    (eps_trend,), (stable_trend,) = both["avg_rank@0.001"], both["avg_stable_rank"]
    assert eps_trend["hparam"] == stable_trend["hparam"] == "weight_decay"
    final = [r for r in records if r["epoch"] == 1 and r["weight_decay"] == 0.0]
    assert stable_trend["mean_rank"][0] == pytest.approx(final[0]["avg_stable_rank"], rel=1e-5)
    assert max(stable_trend["mean_rank"]) < min(eps_trend["mean_rank"])
    manifest = json.loads((out / "figure.json").read_text())
    assert [p["label"] for p in manifest["panels"]] == ["B=128"]
    script.publish(out, tmp_path / "pub")
    published = {f.name for f in (tmp_path / "pub").iterdir()}
    assert published >= {"fig06.png", "fig06_stable.png", "fig06_horizon.png", "trends.txt"}
    # A finished panel is not retrained.
    before = (out / "panel0" / "metrics.jsonl").stat().st_mtime
    script.run_panels(c, out, None, progress=False, restart=False)
    assert (out / "panel0" / "metrics.jsonl").stat().st_mtime == before
    # --fig N [--quick] stands for --config=configs/figNN.py[:quick].
    argv = script.config_argument(["figure.py", "--fig", "7", "--quick", "--out=x"])
    assert argv[1].endswith("configs/fig07.py:quick")
    argv = script.config_argument(["figure.py", "--fig=9", "--long"])
    assert argv[1].endswith("configs/fig09.py:long")


def _fig13_quick():
    path = Path(__file__).resolve().parent.parent / "configs" / "fig13.py"
    return load_config_file(path, "quick")


def test_panels_run_by_separate_processes_keep_each_others_timing(tmp_path, monkeypatch):
    """``--panels``: each process runs its panels; the figure waits for all of them."""
    script = _load_figure_script()
    config, out = _fig13_quick(), tmp_path / "fig"
    assert [p.name for p in script.unfinished_panels(config, out)] == ["panel0", "panel1"]

    def other_process_finishes_panel1_meanwhile(run_config, workdir, **kwargs):
        io.atomic_write_text(out / "timing.json", json.dumps({"panel1": 7.0}))
        (out / "panel1").mkdir(parents=True)
        (out / "panel1" / "summary.txt").write_text("done")
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "summary.txt").write_text("done")

    monkeypatch.setattr(script.engine, "run", other_process_finishes_panel1_meanwhile)
    assert [p.name for p in script.unfinished_panels(config, out)] == ["panel0", "panel1"]
    timing = script.run_panels(config, out, [0], progress=False, restart=False)
    assert set(timing) == {"panel0", "panel1"} and timing["panel1"] == 7.0
    assert set(json.loads((out / "timing.json").read_text())) == {"panel0", "panel1"}
    assert script.unfinished_panels(config, out) == []


def test_jobs_run_each_unfinished_panel_as_its_own_process(tmp_path, monkeypatch):
    script = _load_figure_script()
    argv = ["figure.py", "--fig", "13", "--quick", "--out", str(tmp_path), "--jobs", "2",
            "--publish=pub", "--config.train.epochs=1", "--progress"]  # fmt: skip
    threads = f"--config.sweep.threads={max(1, len(os.sched_getaffinity(0)) // 2)}"
    command = script.panel_command(argv, 1, jobs=2)
    assert command[2:] == ["--fig", "13", "--quick", "--out", str(tmp_path),
                           "--config.train.epochs=1", threads, "--noprogress",
                           "--panels=1"]  # fmt: skip
    # The cores are shared among the processes, unless the command says otherwise.
    mine = script.panel_command([*argv, "--config.sweep.threads=5"], 1, jobs=2)
    assert [a for a in mine if "threads" in a] == ["--config.sweep.threads=5"]
    config = _fig13_quick()
    (tmp_path / "panel0").mkdir()
    (tmp_path / "panel0" / "summary.txt").write_text("finished before")
    started = []

    def fake_run(command, stdout, stderr, env):
        index = int(command[-1].split("=")[1])
        started.append((index, env["JAX_COMPILATION_CACHE_DIR"]))
        (tmp_path / f"panel{index}").mkdir()
        (tmp_path / f"panel{index}" / "summary.txt").write_text("done")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setattr(script.subprocess, "run", fake_run)
    script.run_in_processes(config, tmp_path, argv, jobs=2)
    assert started == [(1, str(tmp_path / ".xla_cache" / "panel1"))]  # panel0 was finished

    def failing_run(command, stdout, stderr, env):
        return subprocess.CompletedProcess(command, 3)

    (tmp_path / "panel1" / "summary.txt").unlink()
    monkeypatch.setattr(script.subprocess, "run", failing_run)
    with pytest.raises(SystemExit) as failed:
        script.run_in_processes(config, tmp_path, argv, jobs=2)
    assert failed.value.code == 1


@pytest.mark.slow
def test_drawing_an_unfinished_figure_is_refused(tmp_path):
    script = Path(__file__).resolve().parent.parent / "experiments" / "figure.py"
    cmd = [sys.executable, str(script), "--fig", "13", "--quick", "--out", str(tmp_path)]
    done = subprocess.run([*cmd, "--draw_only"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "not finished (no summary.txt): panel0, panel1" in done.stderr
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    ("section", "field", "value", "context", "expected"),
    [
        ("optim", "name", "adamw", "optimizer", ["adamw", "sgd"]),
        ("train", "budget", "steps", "budget", ["epochs", "steps"]),
    ],
)
def test_panels_that_differ_only_in_optimizer_or_budget_are_separate_rows(
    tmp_path, section, field, value, context, expected
):
    grid = [_member(seed=s, wd=lam) for lam in (0.0, 1e-3, 1e-2) for s in (0, 1, 2)]
    folder = _figure(tmp_path / "fig", "curves", ["weight_decay"], [("A", grid), ("B", grid)])
    cfg_path = folder / "panel1" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.setdefault(section, {})[field] = value
    cfg_path.write_text(json.dumps(cfg))
    lam = [t for t in trend_lib.trends(load_results(folder)) if t.hparam == "weight_decay"]
    assert sorted(t.fixed[context] for t in lam) == expected
