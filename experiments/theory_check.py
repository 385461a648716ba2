"""The paper's theory (§3) checked on real training runs on Fashion-MNIST.

    python experiments/theory_check.py --out experiments/results/theory

Trains an MLP-BN and a small conv net with SGD + weight decay (and one MLP with momentum),
records the last steps of every weight matrix (``lowrank.train.train_and_record``) and
reports, per layer:

* the forgetting identity ``W_T = a_n W_{T−n} (+ b_n v_{T−n}) + U_{T,n}``: its residual in
  float32 and with x64, for plain SGD, momentum (coupled decay) and decoupled decay, with
  a learning-rate step inside the window;
* Lemma 3.1: per-sample gradient rank ≤ m_l, minibatch gradient rank ≤ B·m_l (BatchNorm in
  training mode), rank U_{T,n} ≤ m_l·B·n, for several n;
* Lemma 3.2: the distance from ``W_T/‖W_T‖`` to the nearest matrix of rank ≤ m_l·B·n
  (Frobenius and spectral) beside the bound ``∏(1−2μ_tλ)‖W_{T−n}‖/‖W_T‖``;
* Theorem 3.3 as in the paper's Fig. 18: the bound ``m_l·B·log(2/ε)/(2μλ)`` against ε
  beside the measured ε-rank of each layer and their average.

Writes ``summary.md``, ``numbers.json`` and small PNGs into ``--out``. About 2.5 CPU-minutes
(3–4 minutes of wall time on 2 shared CPU cores); most of it is XLA compilation and the
host SVDs, so ``--quick`` (a tenth of the training steps, for a smoke run) saves only ~25%.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

# Run as a script, Python puts experiments/ first on sys.path, where a sibling module can
# shadow a standard one: jax tries `from compression import zstd` (Python 3.14's stdlib)
# and would import experiments/compression.py halfway through its own import. Nothing
# here imports siblings, so drop the folder.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lowrank import data, logs, optim, rank, theory, train
from lowrank.analysis.gradient_ranks import gradient_ranks
from lowrank.analysis.theory_summary import report_run, summary
from lowrank.figures.theory_plots import plot_fig18, plot_lemma32, plot_momentum
from lowrank.models import build_model, default_model_config
from lowrank.models.structure import patch_counts

EPSILONS = np.geomspace(1e-3, 0.45, 25)  # the ε axis of Fig. 18 (Theorem 3.3 needs ε < 0.5)


class TinyConvBN(nn.Module):
    """A small VGG-like net: five 3×3 Conv → BatchNorm → ReLU blocks, max-pools, Dense.

    On 28×28 inputs the convolutions see 28², 14², 7², 4² and 2² positions, so m_l runs
    from 784 down to 4 and Lemma 3.1 is non-trivial in the last two blocks.
    """

    num_classes: int = 10
    widths: Sequence[int] = (8, 16, 32, 64, 64)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits ``(B, num_classes)`` of images ``(B, H, W, C)``."""
        for i, w in enumerate(self.widths):
            x = nn.Conv(w, (3, 3), padding=((1, 1), (1, 1)), name=f"conv_{i}")(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"bn_{i}")(x)
            x = nn.relu(x)
            if i < len(self.widths) - 1:
                x = nn.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier")(x)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run whose last ``window`` steps are analysed."""

    name: str
    model: str  # "mlp" | "conv"
    batch_size: int
    mu: float
    lam: float
    beta: float
    steps: int
    window: int
    ns: tuple[int, ...]
    note: str
    decay_mask: str = "all"  # lowrank.optim: "all" parameters (paper) | "kernels"


def runs(quick: bool) -> list[Run]:
    """The runs of the experiment (``quick``: a tenth of the steps, for a smoke run)."""
    s = 0.1 if quick else 1.0
    ns_mlp = (1, 2, 4, 8, 16, 32, 64)
    return [
        Run("mlp_paper", "mlp", 6, 0.1, 8e-3, 0.0, int(3000 * s), 64, ns_mlp,
            "MLP-BN-2-256 with Fig. 18's B=6, μ=0.1, λ=8e-3 (2μλ = 0.0016)"),
        Run("mlp_momentum", "mlp", 6, 0.01, 8e-3, 0.9, int(3000 * s), 64, ns_mlp,
            "as mlp_paper with momentum β=0.9 (coupled decay, PyTorch semantics) and μ=0.01, "
            "the same effective learning rate μ/(1−β)=0.1"),
        Run("mlp_strong", "mlp", 4, 0.2, 0.1, 0.0, int(3000 * s), 64, ns_mlp,
            "MLP-BN-2-256, B=4, μ=0.2, λ=0.1 (2μλ = 0.04) on the kernels only: strong decay, "
            "where the bounds start to bite (with λ on all parameters the BatchNorm scales "
            "decay to 0 and the network dies)", "kernels"),
        Run("conv", "conv", 4, 0.1, 5e-3, 0.0, int(1500 * s), 16, (1, 2, 3, 4, 8, 16),
            "5-layer conv net with BatchNorm, B=4, μ=0.1, λ=5e-3 (2μλ = 0.001)"),
    ]  # fmt: skip


# ------------------------------------------------------------------------------ setup


def host_init(model: nn.Module, input_shape: Sequence[int], seed: int) -> dict[str, Any]:
    """Variables drawn on the host from the abstract shapes (LeCun normal kernels, zero
    biases, unit BatchNorm scales): compiling ``model.init`` costs tens of seconds on
    this CPU and nothing here depends on Flax's exact initializer."""
    shapes = jax.eval_shape(
        partial(model.init, train=False),
        jax.random.key(0),
        jax.ShapeDtypeStruct((1, *input_shape), jnp.float32),
    )
    rng = np.random.default_rng(seed)

    def draw(path, s):
        name = rank.path_str(path).split("/")[-1]
        if name == "kernel":
            fan_in = math.prod(s.shape[:-1])
            return jnp.asarray(rng.standard_normal(s.shape) / math.sqrt(fan_in), jnp.float32)
        fill = 1.0 if name in ("scale", "var") else 0.0
        return jnp.full(s.shape, fill, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def make_model(kind: str) -> nn.Module:
    """The Flax module of a run."""
    if kind == "conv":
        return TinyConvBN()
    cfg = default_model_config("mlp_bn")
    cfg.width, cfg.depth = 256, 2
    return build_model(cfg, 10)


@dataclasses.dataclass
class Trainer:
    """Optimizers and learning-rate functions shared by runs, so compiled programs are
    reused: μ, λ and β live in the optimizer state, only the structure is static."""

    steps_to_drop: int = 8  # the learning rate drops ×0.1 this many steps before the end
    _cache: dict = dataclasses.field(default_factory=dict)

    def optimizer(self, steps: int, decoupled: bool, decay_mask: str):
        key = (steps, decoupled, decay_mask)
        if key not in self._cache:
            cfg = optim.default_optim_config()
            # steps_per_epoch=1: milestones count steps. One drop inside the window.
            cfg.milestones = (steps - self.steps_to_drop,)
            cfg.decoupled, cfg.decay_mask = decoupled, decay_mask
            tx = optim.make_optimizer(cfg, 1)
            mult = optim.lr_multiplier(cfg.schedule, cfg.milestones, cfg.factor, 1)
            self._cache[key] = (tx, train.InjectedLearningRate(mult))
        return self._cache[key]

    def train(self, model, variables, images, labels, batches, n, *, mu, lam, beta,
              decoupled=False, decay_mask="all"):  # fmt: skip
        tx, lr_fn = self.optimizer(batches.shape[0], decoupled, decay_mask)
        opt_state = optim.with_hparams(
            tx.init(variables["params"]), learning_rate=mu, weight_decay=lam, momentum=beta
        )
        state, window, losses = train.train_and_record(
            train.state_from_variables(variables, opt_state), images, labels, batches,
            model=model, tx=tx, record=train.Recording(n, lr_fn),
        )  # fmt: skip
        variables_t = {"params": state.params, "batch_stats": state.batch_stats}
        return variables_t, state.opt_state, theory.Window(**window), losses


def batches_for(steps: int, num: int, batch_size: int, seed: int) -> jax.Array:
    """Shuffled minibatch indices for ``steps`` steps (epoch after epoch)."""
    per = num // batch_size
    epochs = -(-steps // per)
    keys = jax.random.split(jax.random.key(seed), epochs)
    return jnp.concatenate([data.epoch_permutation(k, num, batch_size) for k in keys])[:steps]


# --------------------------------------------------------------------------- analysis


def residuals(window: theory.Window, w_end: dict, lam: float, beta: float,
              decoupled: bool = False) -> dict[str, float]:  # fmt: skip
    """Identity residual per layer for the whole window."""
    dec = theory.decompose_window(window, lam, beta, decoupled)
    return {p: float(r) for p, r in dec.residual(w_end).items()}


def host_norm(m: np.ndarray, norm: str) -> float:
    """Frobenius or spectral norm on the host (no LAPACK inside XLA: rank.spectra_of)."""
    if norm == "frobenius":
        return float(np.linalg.norm(np.asarray(m, np.float64)))
    return float(rank.host_singular_values(m)[0])


def analyse(run: Run, model, variables, window: theory.Window, images, labels) -> dict:
    """Lemma 3.1, Lemma 3.2 and Theorem 3.3 numbers of one run, per layer."""
    w_end = {p: np.asarray(w) for p, w in rank.weight_matrices(variables["params"]).items()}
    m = patch_counts(model, images.shape[1:])
    b = run.batch_size
    ranks = gradient_ranks(model, variables, images[:b], labels[:b])
    # One compiled decomposition serves every n (the window is masked, not sliced).
    decs = {n: theory.decompose_window(window, run.lam, run.beta, n=n) for n in run.ns}
    decs = {n: jax.tree.map(np.asarray, d) for n, d in decs.items()}
    lrs = np.asarray(window.learning_rates)
    out: dict[str, Any] = {"layers": {}}
    for path, w in w_end.items():
        sv = rank.host_singular_values(w)
        scale = {"frobenius": float(np.sqrt(np.sum(sv**2))), "spectral": float(sv[0])}
        weights = np.asarray(window.weights[path])
        layer: dict[str, Any] = {
            "m_l": m[path],
            "shape": list(w.shape),
            "per_sample_rank_max": int(ranks[path]["per_sample"].max()),
            "minibatch_rank_now": int(ranks[path]["minibatch"]),
            # Minibatch gradients recorded in training mode, last 8 steps of the window.
            "minibatch_rank_window_max": max(
                rank.matrix_numerical_rank(g) for g in np.asarray(window.grads[path][-8:])
            ),
            "norm_ratio_last_step": float(np.linalg.norm(weights[-1]) / scale["frobenius"]),
            "n": {},
        }
        for n, dec in decs.items():
            k = m[path] * b * n
            entry: dict[str, Any] = {
                "k": k,
                "rank_U": rank.matrix_numerical_rank(dec.update[path]),
                "a_n": float(dec.weight_coefficient),
                "b_n": float(dec.velocity_coefficient),
                "decay_product": float(theory.decay_product(lrs[-n:], run.lam)),
                "norm_ratio": float(np.linalg.norm(weights[-n]) / scale["frobenius"]),
            }
            for norm in theory.NORMS:
                dist = float(theory.nearest_low_rank_distance(sv / scale[norm], k, norm))
                bound = host_norm(dec.tail[path], norm) / scale[norm]
                entry[norm] = {"distance": dist, "bound": bound}
            if run.beta == 0:
                # The paper's form ∏(1−2μ_tλ)‖W_{T−n}‖/‖W_T‖ (equal to ‖tail‖/‖W_T‖).
                entry["paper_bound_frobenius"] = float(
                    theory.lemma32_bound(
                        entry["decay_product"], np.linalg.norm(weights[-n]), scale["frobenius"]
                    )
                )
            layer["n"][n] = entry
        fro_tail = np.sqrt(np.cumsum((sv**2)[::-1])[::-1]) / scale["frobenius"]
        layer["eps_rank_spectral"] = [int(np.sum(sv / sv[0] > e)) for e in EPSILONS]
        # Smallest k with ‖W − W_k‖_F/‖W‖_F ≤ ε.
        layer["eps_rank_frobenius"] = [
            int(np.argmax(np.append(fro_tail, 0.0) <= e)) for e in EPSILONS
        ]
        if run.beta == 0:
            bound = theory.theorem33_rank_bound(m[path], b, run.mu, run.lam, EPSILONS)
            layer["theorem33"] = np.asarray(bound).tolist()
            layer["theorem33_window_bound"] = (
                m[path] * b * np.asarray(theory.theorem33_window(run.mu, run.lam, EPSILONS))
            ).tolist()
        out["layers"][path] = layer
    out["average_eps_rank"] = np.mean(
        [ly["eps_rank_spectral"] for ly in out["layers"].values()], axis=0
    ).tolist()
    if run.beta:
        a, b_coef, _ = theory.coefficient_table(window.learning_rates, run.lam, run.beta)
        size = lrs.shape[0]
        out["momentum"] = {
            "n": list(range(1, size + 1)),
            "a_n": [float(a[size - n]) for n in range(1, size + 1)],
            "b_n": [float(b_coef[size - n]) for n in range(1, size + 1)],
            "sgd_decay": [float(np.prod(1 - 2 * lrs[-n:] * run.lam)) for n in range(1, size + 1)],
            "rho": theory.momentum_forgetting_rate(run.mu, run.lam, run.beta),
        }
    return out


# ------------------------------------------------------------------------------- main


def identity_checks(trainer: Trainer, images, labels, seed: int) -> dict:
    """Identity residuals on short runs that record every step (μ=0.1 then ×0.1, λ=0.05):
    the MLP with all three update rules in float32 and x64, the conv net with plain SGD
    and momentum in x64 (its float32 residual comes from the main conv run)."""
    out: dict[str, dict] = {}
    variants = [("sgd", 0.0, False), ("momentum", 0.9, False), ("decoupled", 0.9, True)]
    plan = (("mlp", 6, 24, ("float32", "x64"), variants), ("conv", 4, 12, ("x64",), variants[:2]))
    for kind, b, steps, precisions, rules in plan:
        model = make_model(kind)
        v32 = host_init(model, images.shape[1:], seed)
        batches = batches_for(steps, images.shape[0], b, seed)
        for precision in precisions:
            with jax.enable_x64(precision == "x64"):
                dt = jnp.float64 if precision == "x64" else jnp.float32
                v = train.cast_tree(v32, dt)
                x = images.astype(dt)
                for name, beta, decoupled in rules:
                    vt, _, win, _ = trainer.train(
                        model, v, x, labels, batches, steps, mu=0.1, lam=0.05, beta=beta,
                        decoupled=decoupled,
                    )  # fmt: skip
                    w_end = rank.weight_matrices(vt["params"])
                    r = residuals(win, w_end, 0.05, beta, decoupled)
                    out.setdefault(f"{kind}/{name}", {})[precision] = max(r.values())
    return out


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="experiments/results/theory", help="results folder")
    ap.add_argument("--train_subset", type=int, default=4096, help="Fashion-MNIST examples")
    ap.add_argument("--seed", type=int, default=0, help="initialization and shuffling seed")
    ap.add_argument("--quick", action="store_true", help="10%% of the training steps (smoke run)")
    ap.add_argument("--log_level", default="warning", choices=logs.LEVELS,
                    help="threshold for the libraries' log messages")  # fmt: skip
    args = ap.parse_args(argv)
    logs.configure(args.log_level)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    cfg = data.default_data_config()
    cfg.train_subset = args.train_subset
    ds = data.load_dataset(cfg)
    images = data.standardize(ds.train_images, ds.mean, ds.std)
    labels = jnp.asarray(ds.train_labels)
    print(ds.describe())
    trainer = Trainer()

    numbers: dict[str, Any] = {"dataset": ds.describe(), "epsilons": EPSILONS.tolist()}
    numbers["identity"] = identity_checks(trainer, images, labels, args.seed)
    print(f"[{time.time() - t0:.0f} s] identity residual (max over layers; a ×0.1 step inside):")
    for key, r in numbers["identity"].items():
        print(f"  {key:16s} " + "   ".join(f"{p} {v:.2e}" for p, v in r.items()))

    numbers["runs"] = {}
    for run in runs(args.quick):
        t = time.time()
        model = make_model(run.model)
        v0 = host_init(model, images.shape[1:], args.seed)
        batches = batches_for(run.steps, images.shape[0], run.batch_size, args.seed)
        vt, _, window, losses = trainer.train(
            model, v0, images, labels, batches, run.window, mu=run.mu, lam=run.lam,
            beta=run.beta, decay_mask=run.decay_mask,
        )  # fmt: skip
        w_end = rank.weight_matrices(vt["params"])
        res = analyse(run, model, vt, window, images, labels)
        res["residual_float32"] = residuals(window, w_end, run.lam, run.beta)
        if run.beta:
            # The paper's SGD identity applied to a momentum run, for contrast.
            res["residual_sgd_identity"] = residuals(window, w_end, run.lam, 0.0)
            res["forgetting_rate"] = theory.momentum_forgetting_rate(run.mu, run.lam, run.beta)
        logits = jax.jit(model.apply)(vt, images[:2048])
        res["train_accuracy"] = float(jnp.mean(jnp.argmax(logits, -1) == labels[:2048]))
        res["final_loss"] = float(jnp.mean(losses[-100:]))
        res["seconds"] = time.time() - t
        res["run"] = dataclasses.asdict(run)
        numbers["runs"][run.name] = res
        print(f"\n[{time.time() - t0:.0f} s]", end="")
        report_run(run, res)
        plot_lemma32(run, res, out_dir / f"lemma32_{run.name}.png")
        if run.beta == 0:
            plot_fig18(run, res, EPSILONS, out_dir / f"fig18_{run.name}.png")
        else:
            plot_momentum(run, res, out_dir / f"momentum_{run.name}.png")
        if run.model == "conv":
            numbers["identity"]["conv/sgd"]["float32"] = max(res["residual_float32"].values())
    numbers["seconds"] = time.time() - t0
    (out_dir / "numbers.json").write_text(json.dumps(numbers, indent=1, default=_json))
    (out_dir / "summary.md").write_text(summary(numbers))
    print(f"wrote {out_dir} in {numbers['seconds']:.0f} s")


def _json(x: Any) -> Any:
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


if __name__ == "__main__":
    main()
