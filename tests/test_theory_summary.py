"""experiments/theory_check.py's verdicts: each bound is judged on every run, layer and n."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from lowrank.analysis.theory_summary import checks, summary


def _numbers() -> dict:
    """One plain-SGD run, one layer, every quantity inside its bound."""
    ns = {
        n: {
            "k": 4 * 2 * n,
            "rank_U": 4 * n,
            "a_n": 0.99**n,
            "frobenius": {"distance": 0.1 / n, "bound": 0.2 / n},
            "spectral": {"distance": 0.05 / n, "bound": 0.1 / n},
        }
        for n in (1, 2, 4, 16)
    }
    layer = {
        "m_l": 4,
        "shape": [8, 72],
        "per_sample_rank_max": 4,
        "minibatch_rank_now": 8,
        "minibatch_rank_window_max": 8,
        "n": ns,
        "theorem33": list(np.linspace(400.0, 20.0, 25)),
        "eps_rank_spectral": [8] * 25,
    }
    run = dict(note="a conv run", steps=100, batch_size=2, window=16, beta=0.0, model="conv",
               mu=0.1, lam=5e-3)  # fmt: skip
    res = {"run": run, "layers": {"conv_0/kernel": layer}, "train_accuracy": 0.5,
           "residual_float32": {"conv_0/kernel": 1e-6}}  # fmt: skip
    return {
        "dataset": "test data",
        "seconds": 1.0,
        "epsilons": list(np.geomspace(1e-3, 0.45, 25)),
        "identity": {"conv/sgd": {"float32": 1e-6, "x64": 1e-14}},
        "runs": {"conv": res},
    }


def test_every_bound_holds_on_numbers_inside_their_bounds():
    assert all(checks(_numbers()).values())
    page = summary(_numbers())
    assert "FAILS" not in page
    assert "| conv_0/kernel | 8 |" in page  # the Theorem 3.3 table has the layer's row


@pytest.mark.parametrize(
    "break_it, verdict",
    [
        (lambda ly: ly.update(per_sample_rank_max=5), "per-sample rank ≤ m_l"),
        (lambda ly: ly.update(minibatch_rank_now=9), "minibatch rank ≤ B·m_l"),
        (lambda ly: ly["n"][4].update(rank_U=33), "rank U_{T,n} ≤ m_l·B·n"),
        (lambda ly: ly["n"][16]["spectral"].update(distance=0.5), "Lemma 3.2 distance ≤ bound"),
    ],
)
def test_one_violation_anywhere_fails_its_check_and_only_its_own(break_it, verdict):
    numbers = copy.deepcopy(_numbers())
    break_it(numbers["runs"]["conv"]["layers"]["conv_0/kernel"])
    verdicts = checks(numbers)
    assert verdicts[verdict] is False
    assert all(v for k, v in verdicts.items() if k != verdict)
    assert f"{verdict}: FAILS" in summary(numbers)
