"""The theory checked on a recorded window of a real run (``record.steps``).

For each recorded layer and window length n: the forgetting identity's residual, the
numerical rank of ``U_{T,n}`` beside Lemma 3.1's ``m_l·B·n``, and Lemma 3.2's distance from
``W_T/‖W_T‖`` to rank ≤ m_l·B·n beside its bound (Frobenius and spectral norms). One
record per member and n, as written to ``theory.jsonl``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lowrank import rank, theory

if TYPE_CHECKING:
    from lowrank.engine.members import Member


def window_checks(
    config: ml_collections.ConfigDict, m: Member, k: int, host: dict[str, Any], m_l: dict[str, int]
) -> list[dict[str, Any]]:
    """The theory on member ``m``'s recorded window: one record per window length n.

    For each recorded layer: the identity residual ``‖W_T − a_n W_{T−n} − b_n v_{T−n} −
    U_{T,n}‖/‖W_T‖``, the numerical rank of ``U_{T,n}`` beside Lemma 3.1's ``m_l·B·n``, and
    Lemma 3.2's distance from ``W_T/‖W_T‖`` to rank ≤ m_l·B·n beside its bound, in the
    Frobenius and the spectral norm. Under AdamW the window holds Adam's direction in place
    of the gradient (``lowrank.optim.adamw_direction``): the identity holds with it, but
    Adam's elementwise scaling breaks the rank bound of a batch's gradient, so Lemma 3.1's
    and 3.2's bounds are None there (the update's rank is still measured).
    """
    sgd = config.optim.get("name", "sgd") == "sgd"
    member = lambda tree: jax.tree_util.tree_map(lambda x: jnp.asarray(x[k]), tree)
    win = host["window"]
    window = theory.Window(
        member(win["weights"]), member(win["velocities"]), member(win["grads"]),
        jnp.asarray(win["learning_rates"][k]),
    )  # fmt: skip
    matrices = rank.weight_matrices(member(host["params"]))
    w_end = {p: w for p, w in matrices.items() if p in window.grads}
    out = []
    for n in config.record.windows:
        dec = theory.decompose_window(
            window, m.weight_decay, m.momentum, config.optim.decoupled, n=n
        )
        residual = dec.residual(w_end)
        layers = {}
        for p, w in w_end.items():
            layers[p] = {
                "residual": float(residual[p]),
                "rank_update": rank.matrix_numerical_rank(np.asarray(dec.update[p])),
                "rank_bound": None,
                "lemma32_frobenius": None,
                "lemma32_spectral": None,
            }
            if sgd:
                bound = m_l[p] * m.batch_size * n
                fro = theory.lemma32(w, dec.tail[p], bound, "frobenius")
                spec = theory.lemma32(w, dec.tail[p], bound, "spectral")
                layers[p].update(
                    rank_bound=min(bound, min(w.shape)),
                    lemma32_frobenius=[float(fro["distance"]), float(fro["bound"])],
                    lemma32_spectral=[float(spec["distance"]), float(spec["bound"])],
                )
        out.append(
            {
                "member": m.id,
                **m.hparams(),
                "n": n,
                "weight_coefficient": float(dec.weight_coefficient),
                "max_residual": max(v["residual"] for v in layers.values()),
                "layers": layers,
            }
        )
    return out
