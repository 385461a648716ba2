"""The training engine: vmapped sweeps, the decay convention, golden values, results."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from lowrank import engine, io
from lowrank.config import base_config


def tiny_config(**sweep_lists):
    """MLP-BN-2-16 on scikit-learn's digits: compiles and trains in seconds."""
    c = base_config("mlp_bn")
    c.model.width = 16
    c.model.depth = 2
    c.data.name = "digits"
    c.data.source = "sklearn"
    c.augment.crop = c.augment.flip = c.augment.rotate = False
    c.train.epochs = 2
    c.train.eval_batch_size = 500
    c.optim.schedule = "piecewise"
    c.optim.milestones = (1,)  # a schedule step inside the run
    c.optim.factor = 0.5
    c.sweep.seeds = (0,)
    c.sweep.learning_rates = (0.1,)
    c.sweep.weight_decays = (1e-2,)
    c.sweep.momenta = (0.0,)
    c.sweep.batch_sizes = (32,)
    c.rank.epsilons = (1e-3, 0.1)
    c.rank.spectra_every = 1
    # The vmapped program (auto would loop over members on a CPU); the loop is compared
    # with it in test_member_loop_and_host_epoch_give_the_vmapped_scan_results.
    c.sweep.vectorize = "vmap"
    for k, v in sweep_lists.items():
        c.sweep[k] = v
    return c


def run(tmp_path, name, config):
    table = engine.run(config, tmp_path / name, progress=False)
    return table, io.read_jsonl(tmp_path / name / "metrics.jsonl")


COMPARED = ("train_loss", "test_loss", "test_accuracy", "running_loss", "avg_stable_rank")


def test_vmapped_sweep_equals_separate_runs(tmp_path):
    grid = {"seeds": (0, 1), "weight_decays": (0.0, 5e-2), "momenta": (0.0, 0.9)}
    _, together = run(tmp_path, "sweep", tiny_config(**grid))
    assert len({r["member"] for r in together}) == 8
    # Two of the eight members, re-run alone (each separate run compiles: keep it short).
    for seed, lam, beta in [(0, 0.0, 0.9), (1, 5e-2, 0.0)]:
        one = tiny_config(seeds=(seed,), weight_decays=(lam,), momenta=(beta,))
        _, alone = run(tmp_path, f"s{seed}_l{lam}_b{beta}", one)
        mine = [
            r
            for r in together
            if (r["seed"], r["weight_decay"], r["momentum"]) == (seed, lam, beta)
        ]
        assert [r["epoch"] for r in mine] == [r["epoch"] for r in alone] == [0, 1, 2]
        for a, b in zip(mine, alone, strict=True):
            for key in COMPARED:
                if key in b:
                    assert a[key] == pytest.approx(b[key], rel=2e-4, abs=1e-5), key
            assert a["rank"] == b["rank"]
            for p, v in b["frobenius_norm"].items():
                assert a["frobenius_norm"][p] == pytest.approx(v, rel=1e-4)


def test_member_loop_and_host_epoch_give_the_vmapped_scan_results(tmp_path):
    grid = {"seeds": (0, 1), "weight_decays": (0.0, 5e-2)}
    reference = tiny_config(**grid)
    reference.train.epoch_loop = "scan"
    _, expected = run(tmp_path, "reference", reference)
    for vectorize, epoch_loop in [("loop", "host"), ("vmap", "host"), ("loop", "scan")]:
        c = tiny_config(**grid)
        c.sweep.vectorize, c.train.epoch_loop = vectorize, epoch_loop
        _, got = run(tmp_path, f"{vectorize}_{epoch_loop}", c)
        assert len(expected) == len(got) == 4 * 3
        for a, b in zip(expected, got, strict=True):
            assert (a["member"], a["epoch"]) == (b["member"], b["epoch"])
            for key in COMPARED:
                if key in a:
                    assert b[key] == pytest.approx(a[key], rel=2e-4, abs=1e-5), (vectorize, key)
            assert a["rank"] == b["rank"]


@pytest.mark.parametrize("epoch_loop", ["scan", "host"])
def test_members_in_threads_give_the_one_after_another_numbers(tmp_path, epoch_loop):
    # Each member runs the same one-member program on the same inputs whichever thread
    # runs it: bit for bit, not to a tolerance. A diverging member (μ = 400) is among them.
    grid = {"seeds": (0, 1), "learning_rates": (0.1, 400.0), "weight_decays": (0.0, 1e-3)}
    records = {}
    for threads in (1, 3):
        c = tiny_config(**grid)
        c.sweep.vectorize, c.train.epoch_loop, c.sweep.threads = "loop", epoch_loop, threads
        records[threads] = [
            {k: v for k, v in r.items() if k != "seconds"}
            for r in run(tmp_path, f"threads{threads}", c)[1]
        ]
    assert len(records[1]) == 8 * 3
    assert any(r.get("diverged") for r in records[1])
    assert records[3] == records[1]


def test_sweep_threads_default_to_the_cores_this_process_may_use():
    c = tiny_config()
    c.sweep.threads = 0
    assert engine.loop_threads(c) == engine.cpu_cores() == len(os.sched_getaffinity(0))
    c.sweep.threads = 3
    assert engine.loop_threads(c) == 3


def test_member_loop_on_one_cpu_and_host_loop_for_conv_models():
    assert jax.default_backend() == "cpu" and jax.device_count() == 1
    c = tiny_config()
    c.sweep.vectorize = c.train.epoch_loop = "auto"
    # Dense model: one compiled scan per epoch, called for each member.
    assert (engine.epoch_loop_mode(c), engine.vectorize_mode(c)) == ("scan", "loop")
    c.model.name = "resnet18"
    assert (engine.epoch_loop_mode(c), engine.vectorize_mode(c)) == ("host", "loop")
    c.train.epoch_loop, c.sweep.vectorize = "scan", "vmap"
    assert (engine.epoch_loop_mode(c), engine.vectorize_mode(c)) == ("scan", "vmap")  # explicit


# One epoch of tiny_config() on this CPU (jax 0.10.2), recorded when the engine was written.
# They change only if training behaviour changes: data order, initialization, the step,
# BatchNorm, the rank measure. If a change is intended, re-record and say why.
GOLDEN = {
    "running_loss": 1.6160526,
    "test_loss": 1.0176301,
    "avg_rank@0.001": 41 / 3,
    "avg_rank@0.1": 40 / 3,
}


def test_golden_values(tmp_path):
    c = tiny_config()
    c.train.epochs = 1
    _, records = run(tmp_path, "golden", c)
    last = records[-1]
    assert last["epoch"] == 1
    for key, value in GOLDEN.items():
        assert last[key] == pytest.approx(value, rel=1e-4), (key, last[key])


def test_results_folder_holds_everything(tmp_path):
    c = tiny_config(weight_decays=(0.0, 1e-2))
    table, records = run(tmp_path, "out", c)
    out = tmp_path / "out"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["sweep"]["weight_decays"] == [0.0, 1e-2]
    members = json.loads((out / "members.json").read_text())
    assert [m["weight_decay"] for m in members] == [0.0, 1e-2]
    assert len(records) == 2 * 3  # members × (epoch 0 + 2 epochs)
    r = records[-1]
    for key in (
        "train_accuracy", "test_accuracy", "train_loss", "test_loss", "avg_rank@0.001",
        "avg_stable_rank", "avg_entropy_rank", "rank", "frobenius_norm", "norm_ratio",
        "bound", "lr_now", "seed",
    ):  # fmt: skip
        assert key in r, key
    layers = set(r["rank"])
    assert layers == set(r["frobenius_norm"]) == set(r["bound"]) == set(r["norm_ratio"])
    assert len(layers) == 3  # two hidden Dense layers and the classifier
    # λ = 0: Theorem 3.3 gives no bound (infinite), stored as "inf".
    zero = [x for x in records if x["weight_decay"] == 0.0][-1]
    assert all(v[0] == "inf" for v in zero["bound"].values())
    assert r["lr_now"] == pytest.approx(0.05)  # μ halved at epoch 1
    for p, ratio in r["norm_ratio"].items():
        prev = records[-3]["frobenius_norm"][p]
        assert ratio == pytest.approx(prev / r["frobenius_norm"][p], rel=1e-6)
    spectra = sorted(p.name for p in (out / "spectra").iterdir())
    assert spectra == ["group0_epoch0000.npz", "group0_epoch0001.npz", "group0_epoch0002.npz"]
    with np.load(out / "spectra" / "group0_epoch0002.npz") as z:
        assert set(z.files) == layers
        assert all(z[k].shape[0] == 2 for k in z.files)  # one row of σ per member
    assert (out / "summary.txt").read_text().strip() == table.strip()
    # m_l, written once (dense layers on vectors: one patch each).
    assert json.loads((out / "structure.json").read_text()) == {"m_l": dict.fromkeys(layers, 1)}
    assert "rank@0.001" in table


@pytest.mark.parametrize(("beta", "epoch_loop"), [(0.0, "scan"), (0.9, "scan"), (0.9, "host")])
def test_recorded_window_checks_the_theory(tmp_path, beta, epoch_loop):
    c = tiny_config(momenta=(beta,), weight_decays=(5e-2,))
    c.train.epoch_loop = epoch_loop
    c.train.epochs = 1
    c.optim.milestones = (1,)
    c.record.steps = 8
    c.record.windows = (1, 4, 8)
    engine.run(c, tmp_path / "rec", progress=False)
    checks = io.read_jsonl(tmp_path / "rec" / "theory.jsonl")
    assert [r["n"] for r in checks] == [1, 4, 8]
    for r in checks:
        assert r["momentum"] == beta and set(r["layers"]) == {
            "classifier/kernel", "dense_0/kernel", "dense_1/kernel"
        }  # fmt: skip
        assert r["max_residual"] <= 1e-4  # float32 forgetting identity on the real run
        for layer in r["layers"].values():
            assert layer["rank_update"] <= layer["rank_bound"]  # Lemma 3.1
            for dist, bound in (layer["lemma32_frobenius"], layer["lemma32_spectral"]):
                assert dist <= bound + 1e-5  # Lemma 3.2
    # n = 1 with B = 32 and a 16-wide layer: the bound is the full rank; the decay
    # coefficient shrinks with n.
    assert checks[0]["weight_coefficient"] > checks[2]["weight_coefficient"]
