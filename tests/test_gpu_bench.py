"""The prepared GPU benchmark (benchmarks/gpu/) in its CPU dry run, so that it cannot rot."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_gpu_benchmark_dry_run_writes_its_report(tmp_path):
    out = subprocess.run(
        ["bash", "benchmarks/gpu/run.sh", str(tmp_path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert report["dry_run"] and report["setup"]["backend"] == "cpu"
    assert report["agreement"]["agrees"]
    assert set(report["matmul_tflops"]) == {"bf16", "fp32"}
    rows = report["throughput"]
    combos = {(r["model"], r["strategy"], r["precision"]) for r in rows}
    assert len(combos) == 2 * 2 * 2  # models × strategies × precisions
    for r in rows:
        assert r["K"] == 2 and "skipped" not in r, r
        assert math.isfinite(r["member_samples_per_s"]) and r["member_samples_per_s"] > 0
        assert r["of_fp32"] > 0 and r["of_bf16"] > 0
    assert len(report["headline"]) == 2 and "best" in report["headline"][0]
    table = (tmp_path / "gpu_bench.txt").read_text()
    assert "member-samples/s" in table and report["headline"][1] in table
    assert (tmp_path / "gpu_bench.log").exists()


def test_the_project_imports_without_tensorflow_datasets():
    # The GPU machine's image has no TFDS (nor TensorFlow): importing the engine must not
    # need them.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow_datasets', 'tensorflow'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import lowrank.engine, lowrank.config, lowrank.train, lowrank.rank, lowrank.theory\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
