"""Panels that share compile groups: each group is trained once, and the panel that
copies it reads exactly as a full run of its own sweep."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from test_figure_configs import load
from test_plots import _load_figure_script

from lowrank import engine, figures, io, results
from lowrank.config import base_config
from lowrank.figures import shared


def _figure(budget: str = "epochs"):
    """Fig. 1's pattern in miniature: panel 1 holds panel 0's μ = 0.1 column at B = 16
    and a B = 32 group of its own; panel 2 lies wholly inside panel 0."""
    c = base_config("mlp_bn")
    c.model.width, c.model.depth = 16, 1
    c.data.name, c.data.source = "digits", "sklearn"
    c.augment.crop = c.augment.flip = c.augment.rotate = False
    c.train.epochs, c.train.budget = 2, budget
    c.data.train_subset = 1408  # whole batches of 16 and 32 (train.budget = "steps")
    c.train.eval_batch_size = 500
    c.rank.spectra_every = 1
    c.checkpoint.every = 0
    c.sweep.threads = 1
    lams = {"sweep.weight_decays": (0.0, 1e-2)}
    at_16 = {**lams, "sweep.learning_rates": (0.05, 0.1), "sweep.batch_sizes": (16,)}
    column = {**lams, "sweep.learning_rates": (0.1,), "sweep.batch_sizes": (16, 32)}
    inside = {"sweep.weight_decays": (1e-2,), "sweep.learning_rates": (0.1,)}
    c.figure = figures.figure_section(
        1,
        "curves",
        "weight_decay",
        [
            figures.panel("B=16", at_16),
            figures.panel("μ=0.1", column),
            figures.panel("inside", {**inside, "sweep.batch_sizes": (16,)}),
        ],
        scale="quick",
        title="shared groups",
    )
    return c


def _without_seconds(records):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.mark.slow
def test_a_copied_group_reads_as_the_panels_own_full_run(tmp_path):
    script = _load_figure_script()
    config, out = _figure(), tmp_path / "fig"
    script.run_panels(config, out, None, progress=False, restart=False)
    panels = figures.validate_figure(config)
    # Panel 1 trained only its B = 32 group; panel 2 trained nothing.
    own = json.loads((out / "panel1" / "own" / "members.json").read_text())
    assert {m["batch_size"] for m in own} == {32}
    assert not (out / "panel2" / "own").exists()
    for p in panels[1:]:
        full = tmp_path / f"full{p.index}"
        engine.run(p.config, full, progress=False)
        for name in ("members.json", "structure.json"):
            assert (out / p.name / name).read_text() == (full / name).read_text()
        got = _without_seconds(io.read_jsonl(out / p.name / "metrics.jsonl"))
        want = _without_seconds(io.read_jsonl(full / "metrics.jsonl"))
        assert [(r["member"], r["group"], r["epoch"]) for r in got] == [
            (r["member"], r["group"], r["epoch"]) for r in want
        ]
        for a, b in zip(got, want, strict=True):
            assert a.keys() == b.keys()
            assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
            assert a["avg_rank@0.001"] == pytest.approx(b["avg_rank@0.001"], rel=1e-5)
            assert a["learning_rate"] == b["learning_rate"] and a["seed"] == b["seed"]
        spectra = sorted(f.name for f in (full / "spectra").iterdir())
        assert sorted(f.name for f in (out / p.name / "spectra").iterdir()) == spectra
        for name in spectra:
            copied, trained = out / p.name / "spectra" / name, full / "spectra" / name
            with np.load(copied) as x, np.load(trained) as y:
                assert x.files == y.files
                for k in x.files:
                    np.testing.assert_allclose(x[k], y[k], rtol=1e-5, atol=1e-7)
        assert (out / p.name / "summary.txt").read_text() == (full / "summary.txt").read_text()


def test_no_group_is_copied_where_training_the_rest_alone_would_change_it(tmp_path):
    """Under ``train.budget = "steps"`` a group's epochs scale with the smallest B of its
    sweep: panel 1's B = 32 alone would run other epochs than beside B = 16."""
    epochs_panels = figures.validate_figure(_figure("epochs"))
    steps_panels = figures.validate_figure(_figure("steps"))
    done = [(epochs_panels[0], tmp_path / "panel0")]
    assert shared.shared_groups(epochs_panels[1], done) == {16: tmp_path / "panel0"}
    assert shared.shared_groups(steps_panels[1], [(steps_panels[0], tmp_path)]) == {}
    # Panel 2 is wholly inside panel 0: nothing of its own to train.
    assert shared.shared_groups(steps_panels[2], [(steps_panels[0], tmp_path)]) == {16: tmp_path}
    assert shared.own_config(epochs_panels[2].config, {16: tmp_path}) is None
    # Another run config (a different width) shares nothing.
    other = _figure()
    other.model.width = 8
    wider = figures.validate_figure(other)[0]
    assert shared.shared_groups(epochs_panels[1], [(wider, tmp_path)]) == {}


def test_figure_1_trains_each_shared_cell_once():
    """Fig. 1's panels (c) and (d) copy their B = 8 and 16 groups from (a) and (b)."""
    fig01 = load(1).get_config("quick")
    panels = figures.validate_figure(fig01)
    done = [(p, p.name) for p in panels[:2]]
    assert shared.shared_groups(panels[2], done) == {8: "panel0", 16: "panel1"}
    assert shared.shared_groups(panels[3], [*done, (panels[2], "panel2")]) == {
        8: "panel0",
        16: "panel1",
    }


def test_spectra_rows_follow_the_members_on_the_device(tmp_path):
    """A member that diverged has no row in its group's later spectra files: copying
    and reading pick each member's own row, not its position in the group."""
    source = tmp_path / "source"
    (source / "spectra").mkdir(parents=True)
    grid = [{"id": i, "group": 0, "seed": 0, "learning_rate": 0.1 * (i + 1),
             "weight_decay": 0.0, "momentum": 0.0, "batch_size": 8} for i in range(3)]  # fmt: skip
    (source / "members.json").write_text(json.dumps(grid))
    records = [{"member": i, "epoch": e} for e in range(3) for i in range(3)]
    records[3 + 1]["diverged"] = True  # member 1 at epoch 1: still measured then
    records[6 + 1]["diverged"] = True
    diverged = results.diverged_epochs(records)
    assert diverged == {1: 1}
    assert results.spectra_rows([2, 0, 1], diverged, 1) == [0, 1, 2]
    assert results.spectra_rows([2, 0, 1], diverged, 2) == [0, 2]
    # Row values name their member: 10·id + epoch.
    for e, on in ((0, [0, 1, 2]), (1, [0, 1, 2]), (2, [0, 2])):
        np.savez(source / "spectra" / f"group0_epoch{e:04d}.npz",
                 w=np.array([[10.0 * i + e] for i in on]))  # fmt: skip
    # The full sweep holds members 1 and 2 of the source as its ids 0 and 1.
    Member = collections.namedtuple("Member", "id group")
    ids = {1: Member(0, 0), 2: Member(1, 0)}
    dest = tmp_path / "dest"
    shared._copy_spectra(source, grid, dest, ids, diverged)
    with np.load(dest / "spectra" / "group0_epoch0002.npz") as z:
        assert z["w"].tolist() == [[22.0]]  # member 2 only: member 1 had left
    with np.load(dest / "spectra" / "group0_epoch0001.npz") as z:
        assert z["w"].tolist() == [[11.0], [21.0]]
    panel = results.PanelResults("p", "p", ("learning_rate",), source, {}, grid, records)
    assert sorted(panel.member_spectra(1)) == [0, 1]
    assert panel.member_spectra(2)[2]["w"].tolist() == [22.0]
