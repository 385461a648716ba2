"""One command per figure of the paper: run all its sweeps, then draw it.

    python experiments/figure.py --fig 6 --quick --out workdirs/fig06_quick
    python experiments/figure.py --fig 6 --out workdirs/fig06            # paper scale (GPU)
    python experiments/figure.py --config=configs/fig06.py:quick --out DIR \\
        --config.train.epochs=3                                            # overrides
    python experiments/figure.py --fig 6 --quick --out DIR --draw_only     # redraw only
    python experiments/figure.py --fig 6 --estimate                        # compute estimate

``--fig N`` stands for ``--config=configs/figNN.py`` (``:quick`` with ``--quick``;
``:long`` with ``--long``, the quick variant with the horizon rule's own epoch cap, 200,
instead of the figure's 2-core-CPU budget: for a GPU, ``experiments/gpu_long.sh``). Each
panel of the figure is one sweep (``lowrank.engine.run``) into ``OUT/panel{i}/``; a panel
whose sweep has finished is not retrained (the engine resumes an unfinished one from its
checkpoint), and a panel's compile group that a finished panel holds already (Fig. 1's
panels (c) and (d) repeat cells of (a) and (b)) is copied from there, not trained again
(``lowrank.figures.shared``; its own groups train in ``OUT/panel{i}/own/``). ``--panels
0,2`` runs only those panels and draws nothing, so that processes can share a figure's
panels; ``--jobs N`` does that for you, N panels at a time in processes of their own
(small nets leave cores, and a GPU, idle between their tiny kernels), then draws (panels
running side by side copy nothing from each other). No figure is drawn while a panel is
unfinished. Then ``OUT/figNN.png`` is drawn with ``lowrank.figures.plots`` from the
results folder alone, and ``OUT/trends.txt`` starts with the claim rows judged by one
criterion (``lowrank.analysis.claims``: every seed ran, every seed's ρ has the predicted
sign, the rank moves ≥ 5 %, the lowest-rank setting keeps test accuracy ≥ 0.3), then holds
Prediction 4.1's Spearman correlations (``lowrank.analysis.trends``) for the average
ε-rank and, second, the average stable rank (see ``REPORTED_MEASURES``), which
``OUT/figNN_stable.png`` plots; where the figure has λ = 0 members, also for each
measure's decay ratio (``lowrank.analysis.trends.decay_trends``: a run's final value over
its λ = 0 control's). ``--publish DIR`` copies the small files (PNGs, tables,
``figure.json``) into ``DIR`` (``experiments/results/figNN`` for committed results).
"""

from __future__ import annotations

import dataclasses
import os

# As lowrank.main: one OpenBLAS thread inside jaxlib's LAPACK kernels; a user's value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import logging
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jax
from absl import app, flags
from ml_collections import config_flags

from lowrank import engine, figures, io, logs
from lowrank.analysis import claims as claims_lib
from lowrank.analysis import trends as trend_lib
from lowrank.config import ConfigError
from lowrank.data import DataError
from lowrank.figures import horizon_rule, plots, shared
from lowrank.results import load_results

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"

_CONFIG = config_flags.DEFINE_config_file("config", None, "A figure config file (get_config).")
flags.DEFINE_integer("fig", None, "Figure number: --config=configs/figNN.py.")
flags.DEFINE_bool("quick", False, "With --fig: the config's quick (2-core CPU) variant.")
flags.DEFINE_bool("long", False, "With --fig: the quick variant with the horizon rule's cap.")
_OUT = flags.DEFINE_string("out", None, "Results folder of the figure (created).")
_PANELS = flags.DEFINE_list("panels", None, "Run only these panel indices (e.g. 0,2).")
_JOBS = flags.DEFINE_integer("jobs", 1, "Run up to this many panels at once, each a process.")
_DRAW_ONLY = flags.DEFINE_bool("draw_only", False, "Only draw from the results folder.")
_ESTIMATE = flags.DEFINE_bool("estimate", False, "Print the compute estimate and exit.")
_RESTART = flags.DEFINE_bool("restart", False, "Delete each panel's results and start over.")
_PUBLISH = flags.DEFINE_string("publish", None, "Copy the PNG and tables into this folder.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")
_LOG_LEVEL = logs.define_flag()
log = logging.getLogger("experiments.figure")

PUBLISHED = ("figure.json", "summary.txt", "trends.txt", "trends.json", "timing.json")


def config_argument(argv: list[str]) -> list[str]:
    """Turns ``--fig N [--quick | --long]`` into ``--config=configs/figNN.py[:quick|:long]``.

    Done before absl parses the flags, so that ``--config.<field>=`` overrides work with
    ``--fig`` too.
    """
    if any(a == "--config" or a.startswith("--config=") for a in argv):
        return argv
    fig = None
    for i, a in enumerate(argv):
        if a.startswith("--fig="):
            fig = a.split("=", 1)[1]
        elif a == "--fig" and i + 1 < len(argv):
            fig = argv[i + 1]
    if fig is None:
        return argv
    scale = ""
    for arg in horizon_rule.QUICK_ARGS:  # the config's reduced-scale arguments
        if any(a in (f"--{arg}", f"--{arg}=true", f"--{arg}=True") for a in argv):
            scale = f":{arg}"
    path = CONFIGS / f"fig{int(fig):02d}.py"
    return [argv[0], f"--config={path}{scale}", *argv[1:]]


def run_panels(config, out: Path, only: list[int] | None, progress: bool, restart: bool) -> dict:
    """Runs the sweep of every (selected) panel; returns wall seconds per panel."""
    panels = figures.validate_figure(config)
    figures.write_manifest(config, out)
    kwargs = {"progress": progress, "restart": restart}
    timing_file = out / "timing.json"

    def recorded() -> dict:  # read afresh: other processes may run other panels
        return json.loads(timing_file.read_text()) if timing_file.exists() else {}

    finished: list[tuple[figures.Panel, Path]] = []  # what later panels may copy from
    for p in panels:
        workdir = out / p.name
        done = (workdir / "summary.txt").exists()
        if only is not None and p.index not in only:
            finished += [(p, workdir)] if done else []
            continue
        if done and not restart:
            log.info("panel %s (%s): finished before, not retrained", p.name, p.label)
            finished.append((p, workdir))
            continue
        log.info("panel %s (%s): %d members", p.name, p.label, len(engine.members(p.config)))
        start = time.perf_counter()
        run_panel(p, workdir, finished, kwargs)
        finished.append((p, workdir))
        timing = recorded() | {p.name: round(time.perf_counter() - start, 1)}
        io.atomic_write_text(timing_file, json.dumps(timing, indent=1) + "\n")
    return recorded()


def run_panel(p: figures.Panel, workdir: Path, finished: list, kwargs: dict) -> None:
    """Trains a panel, copying the compile groups a finished panel holds already
    (``lowrank.figures.shared``); a panel whose own run is under way (checkpoints in its
    folder) is run on as it started."""
    under_way = (workdir / "checkpoints").exists() and not kwargs["restart"]
    shared_groups = {} if under_way else shared.shared_groups(p, finished)
    if not shared_groups:
        engine.run(p.config, workdir, **kwargs)
        return
    parts = dict(shared_groups)
    own = shared.own_config(p.config, shared_groups)
    if own is not None:
        engine.run(own, workdir / "own", **kwargs)
        parts |= {b: workdir / "own" for b in own.sweep.batch_sizes}
    for b, folder in shared_groups.items():
        log.info("panel %s: group B=%d copied from %s (trained there)", p.name, b, folder.name)
    shared.assemble(p.config, workdir, parts)


# Flags the parent of ``--jobs`` keeps to itself (with a value, then without).
_PARENT_FLAGS = (("--jobs", "--publish", "--panels"), ("--progress", "--noprogress", "--draw_only"))


def panel_command(argv: list[str], index: int, jobs: int = 1) -> list[str]:
    """The command that runs panel ``index`` of the figure ``argv`` describes in a process
    of its own: the same flags and overrides, less those the parent keeps, no progress bars
    (several would interleave), ``--panels=index``, and unless ``argv`` sets it, the CPU
    cores shared among the ``jobs`` processes (``sweep.threads``)."""
    kept, skip_value = [], False
    for arg in argv[1:]:
        if skip_value:
            skip_value = False
            continue
        name = arg.split("=", 1)[0]
        if name in _PARENT_FLAGS[0]:
            skip_value = "=" not in arg
        elif name not in _PARENT_FLAGS[1]:
            kept.append(arg)
    if not any(arg.startswith("--config.sweep.threads") for arg in kept):
        kept.append(f"--config.sweep.threads={max(1, engine.cpu_cores() // jobs)}")
    script = str(Path(__file__).resolve())
    return [sys.executable, script, *kept, "--noprogress", f"--panels={index}"]


def run_in_processes(config, out: Path, argv: list[str], jobs: int) -> None:
    """``--jobs N``: runs the figure's unfinished panels N at a time, each as its own
    ``figure.py --panels i`` (output in ``OUT/panel{i}.log``). Small nets leave cores (and
    a GPU) idle between their tiny kernels, so panels side by side finish sooner than one
    after another; each process has its own compilation cache, unless
    ``JAX_COMPILATION_CACHE_DIR`` names a shared one."""
    todo = [p.index for p in unfinished_panels(config, out)]
    out.mkdir(parents=True, exist_ok=True)

    def run_one(index: int) -> int:
        env = dict(os.environ)
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(out / ".xla_cache" / f"panel{index}"))
        log.info("panel%d: started in its own process (output in panel%d.log)", index, index)
        with open(out / f"panel{index}.log", "w") as output:
            command = panel_command(argv, index, jobs)
            return subprocess.run(
                command, stdout=output, stderr=subprocess.STDOUT, env=env
            ).returncode

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = dict(zip(todo, pool.map(run_one, todo), strict=True))
    failed = {i: rc for i, rc in codes.items() if rc != 0}
    if failed:
        logs_named = ", ".join(
            f"panel{i} (exit {rc}: {out / f'panel{i}.log'})" for i, rc in failed.items()
        )
        print(f"error: {logs_named}; rerun the same command to resume them.", file=sys.stderr)
        sys.exit(1)


def unfinished_panels(config, out: Path) -> list[figures.Panel]:
    """The panels of the figure whose sweep has not finished in ``out``."""
    panels = figures.validate_figure(config)
    return [p for p in panels if not (out / p.name / "summary.txt").exists()]


# The rank measures whose trends (and, for the stable rank, figure) ``report`` writes, with
# what the trends table says about each. The ε-rank is Prediction 4.1's measure. The
# stable rank moves long before any singular value falls below ε·σ_max, so it shows a
# direction where the ε-rank is still flat; but it also falls without weight decay
# (training grows a few directions), so only its λ trend, and its B or μ trend set
# against the λ = 0 row, speak to the paper's claim.
REPORTED_MEASURES = {
    "epsilon": "",
    "stable": " (not the paper's measure; it also falls without weight decay, so compare "
    "each row with λ = 0)",
}


def write_trends(out: Path, results) -> str:
    """Writes ``trends.txt`` (the judged claim rows first, then every measure's trends and
    decay ratios) and ``trends.json``; returns the text."""
    found, sections = {}, []  # the plain trends of every measure, then the decay ratios
    found_decay, decay_sections = {}, []
    for measure, caveat in REPORTED_MEASURES.items():
        key, label = plots.rank_measure(measure, results.epsilon)
        found[key] = trend_lib.trends(results, key=key)
        sections.append(
            f"Spearman ρ between each hyperparameter and the final {label}{caveat}, one "
            f"ρ per seed (others held fixed)\n\n{trend_lib.trend_table(found[key])}\n"
        )
        # With a λ = 0 control: the part of each change that decay adds.
        decay = trend_lib.decay_trends(results, key)
        if decay:
            found_decay[f"{key} / λ=0"] = decay
            table = trend_lib.trend_table(decay, "decay ratio", ".2f")
            decay_sections.append(
                f"Spearman ρ between each hyperparameter and the decay ratio of the "
                f"{label}: a run's final value over that of the same run with λ = 0 "
                f"(same seed, μ, β, B), one ρ per seed (others held fixed)\n\n{table}\n"
            )
    for measure in ("epsilon", "stable"):  # the layers' outputs, where recorded
        key, label = plots.rank_measure(measure, results.epsilon)
        key, label = f"repr_{key}", label.replace("‖W‖", "‖H‖")  # H: a layer's outputs
        if any(key in r for p in results.panels for r in p.records):
            found[key] = trend_lib.trends(results, key=key)
            sections.append(
                f"Spearman ρ between each hyperparameter and the final {label} of the layers' "
                f"outputs on the probe batch (rank.probe_size), one ρ per seed (others held "
                f"fixed)\n\n{trend_lib.trend_table(found[key])}\n"
            )
    found.update(found_decay)
    sections += decay_sections
    claims, controls = claims_lib.claim_rows(results)
    sections.insert(
        0,
        f"Prediction 4.1 on the ε-rank (ε={results.epsilon:g}), by the criterion of "
        f"lowrank.analysis.claims\n\n{claims_lib.claims_table(claims, controls)}\n",
    )
    text = "\n".join(sections)
    io.atomic_write_text(out / "trends.txt", text)
    io.atomic_write_text(
        out / "trends.json",
        json.dumps(
            io._clean(
                {k: [t.as_dict() for t in v] for k, v in found.items()}
                | {"claims": [dataclasses.asdict(c) for c in claims + controls]}
            ),
            indent=1,
        )
        + "\n",
    )
    return text


def report(out: Path) -> str:
    """Draws the figure(s) and writes ``summary.txt`` and ``trends.txt``; returns the text."""
    results = load_results(out)
    png = plots.draw(out)
    parts = []
    for p in results.panels:
        table = (
            (p.workdir / "summary.txt").read_text() if (p.workdir / "summary.txt").exists() else ""
        )
        parts.append(f"## {p.label} ({p.name})\n{table}")
    if results.figure.get("reduced"):
        parts.insert(0, f"reduced: {results.figure['reduced']}\n")
    io.atomic_write_text(out / "summary.txt", "\n".join(parts))
    text = ""
    if results.kind in ("curves", "heatmap"):
        for measure in REPORTED_MEASURES:
            if measure != "epsilon":
                plots.draw(out, measure=measure)
        if any("horizon" in r for p in results.panels for r in p.records):
            plots.draw(out, against="horizon")  # figNN_horizon.png
        text = write_trends(out, results)
    return f"figure: {png}\n{text}"


def publish(out: Path, dest: Path) -> None:
    """Copies the figure's PNG and small text files into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in [*out.glob("fig*.png"), *(out / name for name in PUBLISHED)]:
        if f.exists():
            shutil.copy2(f, dest / f.name)


def compile_cache(out: Path) -> None:
    """XLA's persistent compilation cache in ``out/.xla_cache`` (unless
    ``JAX_COMPILATION_CACHE_DIR`` names one): a figure's panels and compile groups often
    share shapes (μ and λ are traced), and a quick conv figure spends most of its time
    compiling, so each program is compiled once per figure (and once for a rerun)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    jax.config.update("jax_compilation_cache_dir", str(out / ".xla_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv: list[str]) -> None:
    del argv
    logs.configure(_LOG_LEVEL.value)
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("give --fig N (with --quick for the CPU variant) or --config=FILE.")
    try:
        if _ESTIMATE.value:
            figures.validate_figure(config)
            est = figures.estimate(config)
            print(json.dumps({k: round(v, 4) for k, v in est.items()}, indent=1))
            return
        if not _OUT.value:
            raise app.UsageError("--out is required.")
        out = Path(_OUT.value)
        only = [int(i) for i in _PANELS.value] if _PANELS.value else None
        if _JOBS.value < 1:
            raise app.UsageError(f"--jobs={_JOBS.value}: give the number of panels at once, ≥ 1.")
        if _JOBS.value > 1 and (only is not None or _RESTART.value):
            raise app.UsageError(
                "--jobs runs every unfinished panel: drop --panels, and for --restart delete "
                "the panels' folders (or run --restart without --jobs)."
            )
        if _JOBS.value > 1 and not _DRAW_ONLY.value:
            run_in_processes(config, out, sys.argv, _JOBS.value)
        elif not _DRAW_ONLY.value:
            compile_cache(out)
            run_panels(config, out, only, _PROGRESS.value, _RESTART.value)
        left = [p.name for p in unfinished_panels(config, out)]
        if only is not None and not _DRAW_ONLY.value:  # other processes may run the rest
            print(
                f"panels {', '.join(_PANELS.value)} finished"
                + (f"; not yet: {', '.join(left)}" if left else "")
                + ". Draw the figure with --draw_only once every panel has."
            )
            return
        if left:
            raise ConfigError(
                f"{out}: not finished (no summary.txt): {', '.join(left)}, so the figure "
                "would be drawn from part of its runs: run the command without --draw_only "
                "(it resumes each unfinished panel from its checkpoint), then draw."
            )
        print(report(out))
        if _PUBLISH.value:
            publish(out, Path(_PUBLISH.value))
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, argv=config_argument(sys.argv))
