#!/usr/bin/env bash
# The one command on the GPU machine (from the repository root):
#   bash benchmarks/gpu/run.sh "$OUT"            (--dry-run for tiny sizes anywhere)
# Installs the carried wheels (benchmarks/gpu/prepare.sh) next to the image's own
# packages, without touching them, and runs the benchmark within 8 minutes.
set -euo pipefail
out=${1:?usage: run.sh OUT_DIR [--dry-run]}
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}
if ! "$python" -c "import ml_collections" 2>/dev/null; then
  ls "$here"/wheels/*.whl >/dev/null 2>&1 ||
    { echo "run.sh: no ml_collections and no wheels in $here/wheels: run prepare.sh first" >&2; exit 2; }
  target=$(mktemp -d)
  "$python" -m pip install -q --no-deps --no-index --target "$target" "$here"/wheels/*.whl
  export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
fi
mkdir -p "$out"
timeout 470 "$python" "$here/bench_gpu.py" "$out" "$@" 2>&1 | tee "$out/gpu_bench.log"
