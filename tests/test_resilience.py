"""Sweeps that survive: divergence isolation, checkpoint/resume, several devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train import COMPARED, tiny_config

from lowrank import engine, io
from lowrank.checkpoint import WorkdirConfigError

CHILD = Path(__file__).parent / "sweep_child.py"
ROOT = Path(__file__).parent.parent
VOLATILE = ("seconds",)  # wall-clock time: the only field allowed to differ


def stable(records):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def child(workdir, fault="none", overrides=None, env=None, expect=0):
    cmd = [sys.executable, str(CHILD), str(workdir), fault, json.dumps(overrides or {})]
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == expect, out.stderr[-3000:]
    return out


@pytest.mark.parametrize("vectorize", ["loop", "vmap"])
def test_diverging_member_is_isolated(tmp_path, vectorize):
    grid = {"seeds": (0, 1), "weight_decays": (1e-3,)}
    c = tiny_config(learning_rates=(0.1, 400.0), **grid)
    alone = tiny_config(learning_rates=(0.1,), **grid)
    c.sweep.vectorize = alone.sweep.vectorize = vectorize
    table = engine.run(c, tmp_path / "with", progress=False)
    with_it = io.read_jsonl(tmp_path / "with" / "metrics.jsonl")
    engine.run(alone, tmp_path / "without", progress=False)
    without = io.read_jsonl(tmp_path / "without" / "metrics.jsonl")

    bad = [r for r in with_it if r["learning_rate"] == 400.0 and r["seed"] == 0]
    assert bad[0]["epoch"] == 0 and not bad[0].get("diverged")
    assert bad[1]["diverged"] and "diverged at epoch 1" in bad[1]["reason"]
    assert all(r["diverged"] and "test_accuracy" not in r for r in bad[2:])
    assert [r["epoch"] for r in bad] == [0, 1, 2]
    good = [r for r in with_it if r["learning_rate"] == 0.1]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "member"} for r in stable(rs)]
    if vectorize == "loop":
        # One compiled program per member, called for each in turn: a member's numbers
        # cannot depend on the others.
        assert strip(good) == strip(without)  # bit for bit
    else:
        # One program over all members: removing one changes the shapes XLA compiles for
        # (and so the kernels and their summation order); equal to float32 rounding.
        assert [r["epoch"] for r in good] == [r["epoch"] for r in without]
        for a, b in zip(good, without, strict=True):
            assert a.keys() == b.keys()
            for key in COMPARED:
                if key in b:
                    assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
            assert a["rank"] == b["rank"]
    assert "diverged (2" in table and "mu=400" in table
    assert "400" not in table.split("diverged")[0]  # not averaged into the table


def test_killed_run_resumes_to_the_uninterrupted_metrics(tmp_path):
    child(tmp_path / "whole")
    whole = io.read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    # Dies after epoch 2's metrics are written but before its checkpoint: the resumed run
    # must redo epoch 2 without duplicating its lines.
    child(tmp_path / "cut", "after_metrics:3", expect=17)
    partial = io.read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert [r["epoch"] for r in partial] == [0, 1, 2]
    child(tmp_path / "cut")
    resumed = io.read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert stable(resumed) == stable(whole)


def test_crash_during_checkpoint_write_leaves_a_resumable_workdir(tmp_path):
    # Members one by one and epochs from a host loop (the CPU path of conv nets): resuming
    # is exact there too.
    how = {"sweep.vectorize": "loop", "train.epoch_loop": "host"}
    child(tmp_path / "whole", overrides=how)
    whole = io.read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    # Dies while epoch 2's checkpoint is written.
    child(tmp_path / "cut", "in_save:3", overrides=how, expect=17)
    child(tmp_path / "cut", overrides=how)
    assert stable(io.read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == stable(whole)
    kept = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert kept == ["2", "3"]  # checkpoint.keep = 2; no half-written folder left


@pytest.mark.parametrize("fault", ["sigterm:2", "sigterm_twice:2"])
def test_sigterm_checkpoints_the_epoch_in_flight_and_resumes_exactly(tmp_path, fault):
    # No periodic checkpoints: the one written on the signal is what the rerun resumes from.
    how = {"checkpoint.every": 0}
    child(tmp_path / "whole", overrides=how)
    whole = io.read_jsonl(tmp_path / "whole" / "metrics.jsonl")
    out = child(tmp_path / "cut", fault, overrides=how, expect=engine.EXIT_PREEMPTED)
    assert "stopped on SIGTERM after group 0 epoch 2" in out.stderr
    if fault.startswith("sigterm_twice"):
        assert "SIGTERM again: already stopping" in out.stderr
    # The epoch in flight (the 2nd trained one, epoch 2) finished and was written.
    partial = io.read_jsonl(tmp_path / "cut" / "metrics.jsonl")
    assert {r["epoch"] for r in partial} == {0, 1, 2}
    assert stable(partial) == stable([r for r in whole if r["epoch"] <= 2])
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["2"]
    child(tmp_path / "cut", overrides=how)
    assert stable(io.read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == stable(whole)


def test_a_group_whose_members_all_diverge_still_finishes_and_resumes(tmp_path):
    c = tiny_config(seeds=(0, 1), learning_rates=(400.0,), weight_decays=(1e-3,))
    table = engine.run(c, tmp_path / "w", progress=False)
    records = io.read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert all(r.get("diverged") for r in records if r["epoch"] == c.train.epochs)
    assert "diverged (2, left out of the table above)" in table
    assert engine.run(c, tmp_path / "w", progress=False) == table  # resumes past both groups


def test_workdir_of_another_config_is_refused_unless_restart(tmp_path):
    c = tiny_config()
    c.train.epochs = 1
    engine.run(c, tmp_path / "w", progress=False)
    before = (tmp_path / "w" / "metrics.jsonl").read_text()
    other = tiny_config(weight_decays=(0.0,))
    other.train.epochs = 1
    with pytest.raises(WorkdirConfigError, match=r"sweep.weight_decays: \[0.01\] → \[0.0\]"):
        engine.run(other, tmp_path / "w", progress=False)
    assert (tmp_path / "w" / "metrics.jsonl").read_text() == before  # nothing lost
    # Fields that only choose how the run executes do not make it another config.
    same = tiny_config()
    same.train.epochs = 1
    same.sweep.vectorize, same.train.epoch_loop = "loop", "host"
    engine.run(same, tmp_path / "w", progress=False)
    assert (tmp_path / "w" / "metrics.jsonl").read_text() == before
    assert json.loads((tmp_path / "w" / "config.json").read_text())["sweep"]["vectorize"] == "loop"
    engine.run(other, tmp_path / "w", progress=False, restart=True)
    records = io.read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert {r["weight_decay"] for r in records} == {0.0} and len(records) == 2


def test_members_sharded_over_four_devices_match_one_device(tmp_path):
    grid = {"sweep.seeds": [0, 1, 2], "sweep.weight_decays": [0.0, 0.05]}  # 6 members
    child(tmp_path / "one", overrides=grid)
    four = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    child(tmp_path / "four", overrides=grid, env=four)
    one = stable(io.read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    many = stable(io.read_jsonl(tmp_path / "four" / "metrics.jsonl"))
    assert len(one) == len(many) == 6 * 4  # no padded member in the results
    for a, b in zip(one, many, strict=True):
        assert a["member"] == b["member"] and a["epoch"] == b["epoch"]
        for key in ("train_loss", "test_loss", "test_accuracy", "avg_stable_rank"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
        assert a["rank"] == b["rank"]
    # Running members one after another needs one device: refused, with the fix named.
    out = child(tmp_path / "loop", overrides={**grid, "sweep.vectorize": "loop"}, env=four,
                expect=1)  # fmt: skip
    assert "sweep.vectorize='loop' runs members one after another on one device" in out.stderr
    assert not (tmp_path / "loop").exists()  # refused before anything was loaded or written


def _two_processes(workdir, grid, faults=("none", "none")):
    """Runs the child as two processes of one multi-host run; returns (rc, out, err)s."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for pid, fault in enumerate(faults):
        env = {
            **os.environ,
            "LOWRANK_TEST_COORDINATOR": f"127.0.0.1:{port}",
            "LOWRANK_TEST_NUM_PROCESSES": "2",
            "LOWRANK_TEST_PROCESS_ID": str(pid),
        }
        cmd = [sys.executable, str(CHILD), str(workdir), fault, json.dumps(grid)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=600) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs, strict=True)]


GRID = {"sweep.seeds": [0, 1, 2], "sweep.weight_decays": [0.05]}  # 3 members, 2 hosts


def test_two_processes_give_the_results_of_one(tmp_path):
    child(tmp_path / "one", overrides=GRID)
    outs = _two_processes(tmp_path / "two", GRID)
    for rc, _, err in outs:
        assert rc == 0, err[-3000:]
    assert "rank@0.001" in outs[0][1]  # process 0 wrote and printed the results
    assert "rank@0.001" not in outs[1][1]
    one = stable(io.read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    two = stable(io.read_jsonl(tmp_path / "two" / "metrics.jsonl"))
    assert len(one) == len(two) == 3 * 4  # written once, no padded member
    for a, b in zip(one, two, strict=True):
        assert a["member"] == b["member"] and a["epoch"] == b["epoch"]
        for key in ("train_loss", "test_loss", "test_accuracy", "avg_stable_rank"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), key
        assert a["rank"] == b["rank"]


def test_a_signal_to_one_process_stops_both_after_the_same_epoch(tmp_path):
    grid = {**GRID, "checkpoint.every": 0}
    outs = _two_processes(tmp_path / "two", grid, faults=("none", "sigterm:2"))
    for rc, _, err in outs:
        assert rc == engine.EXIT_PREEMPTED, err[-3000:]
    assert "after group 0 epoch 2" in outs[0][2] and "another process" in outs[0][2]
    assert {r["epoch"] for r in io.read_jsonl(tmp_path / "two" / "metrics.jsonl")} == {0, 1, 2}
    for rc, _, err in _two_processes(tmp_path / "two", grid):  # the requeued job
        assert rc == 0, err[-3000:]
    child(tmp_path / "one", overrides=grid)
    one = stable(io.read_jsonl(tmp_path / "one" / "metrics.jsonl"))
    two = stable(io.read_jsonl(tmp_path / "two" / "metrics.jsonl"))
    assert [(r["member"], r["epoch"]) for r in two] == [(r["member"], r["epoch"]) for r in one]
    for a, b in zip(one, two, strict=True):
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4, abs=1e-6)
