#!/usr/bin/env bash
# The figures' "long" variants on a GPU machine, in one command (from the repository root):
#
#   bash benchmarks/gpu/prepare.sh                         # here: the wheels it lacks
#   bash experiments/gpu_long.sh OUT_DIR 10 9 4             # there (carry benchmarks/gpu/wheels)
#
# "long" is a figure's quick variant (the same offline data, model and grid) with the horizon
# rule's own epoch cap instead of the 2-core-CPU budget, so that the figures whose claim rows
# need more steps than 20 CPU minutes give (the ViT's Figs. 9 and 10, Fig. 4) reach the
# horizon window. Figures run one after another, each until LONG_DEADLINE_S (default 540 s)
# from the start; each finished one is packed into OUT_DIR/figNN_long.tar.gz (its published
# files: PNGs, summary, trends, timing). Unpack into experiments/results/figNN_long/.
set -uo pipefail
out=${1:?usage: gpu_long.sh OUT_DIR FIG [FIG ...]}
shift
[ $# -gt 0 ] || { echo "gpu_long.sh: give at least one figure number" >&2; exit 2; }
deadline=$((SECONDS + ${LONG_DEADLINE_S:-540}))
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
wheels="$root/benchmarks/gpu/wheels"
if ! "$python" -c "import ml_collections" 2>/dev/null; then
  ls "$wheels"/*.whl >/dev/null 2>&1 ||
    { echo "gpu_long.sh: no ml_collections and no wheels in $wheels: run prepare.sh" >&2; exit 2; }
  target=$(mktemp -d)
  "$python" -m pip install -q --no-deps --no-index --target "$target" "$wheels"/*.whl || exit 2
  export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
fi
mkdir -p "$out"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$python" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee "$out/long.log"
for fig in "$@"; do
  name=$(printf 'fig%02d' "$fig")
  left=$((deadline - SECONDS))
  if [ "$left" -lt 30 ]; then
    echo "== $name: skipped (${left} s left)" | tee -a "$out/long.log"
    continue
  fi
  work=$(mktemp -d)
  echo "== $name: start, ${left} s left" | tee -a "$out/long.log"
  timeout "$left" "$python" "$root/experiments/figure.py" --fig "$fig" --long \
    --out "$work/run" --publish "$work/$name" --noprogress >>"$out/long.log" 2>&1
  rc=$?
  echo "== $name: rc=$rc after $SECONDS s" | tee -a "$out/long.log"
  if [ "$rc" -eq 0 ]; then
    tar -czf "$out/${name}_long.tar.gz" -C "$work" "$name"
  fi
done
