#!/usr/bin/env bash
# The figures' "long" variants on a GPU machine, in one command (from the repository root):
#
#   bash benchmarks/gpu/prepare.sh                         # here: the wheels it lacks
#   bash experiments/gpu_long.sh OUT_DIR 9 2 1              # there (carry benchmarks/gpu/wheels)
#
# "long" is a figure's quick variant (the same offline data, model and grid) with the horizon
# rule's own epoch cap instead of the 2-core-CPU budget, so that the figures whose claim rows
# need more steps than 20 CPU minutes give (the ViT's Figs. 9 and 10, Fig. 4) reach the
# horizon window. Every panel of every figure named runs at once, as its own process: a
# small net's step is a chain of tiny kernels that leaves the GPU idle between them, so
# panels that take turns on it finish together in about the time of the longest. Each
# stops at LONG_DEADLINE_S (default 540 s) from the start, keeping its checkpoint in
# LONG_WORK/figNN (default workdirs/long; run the same command again on a still-warm
# machine to resume).
# A figure whose panels all finished is drawn and packed into OUT_DIR/figNN_long.tar.gz
# (its published files: PNGs, summary, trends, timing; unpack into
# experiments/results/long/); of one that did not, each finished panel's results without
# checkpoints go into OUT_DIR/figNN_panels.tar.gz, to be drawn once the rest has run.
# LONG_ARGS: more figure.py flags for every run (e.g. --config.train.epochs=2, for a test).
set -uo pipefail
out=${1:?usage: gpu_long.sh OUT_DIR FIG [FIG ...]}
shift
[ $# -gt 0 ] || { echo "gpu_long.sh: give at least one figure number" >&2; exit 2; }
deadline=${LONG_DEADLINE_S:-540}
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
out=$(cd "$out" && pwd)
works=${LONG_WORK:-$root/workdirs/long}
# Several processes share the GPU: none may take most of its memory up front.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
"$python" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee -a "$out/long.log"
declare -a pids=()
for fig in "$@"; do
  name=$(printf 'fig%02d' "$fig")
  work="$works/$name"
  mkdir -p "$work"
  panels=$("$python" -c "
import importlib.util
from lowrank.figures import panel_configs
spec = importlib.util.spec_from_file_location('c', '$root/configs/$name.py')
config = importlib.util.module_from_spec(spec)
spec.loader.exec_module(config)
print(len(panel_configs(config.get_config('long'))))") ||
    { echo "== $name: no config" | tee -a "$out/long.log"; continue; }
  for ((i = 0; i < panels; i++)); do
    # Each process its own compilation cache: they would write the same entries at once.
    JAX_COMPILATION_CACHE_DIR="$work/.xla_cache_$i" timeout "$deadline" \
      "$python" "$root/experiments/figure.py" --fig "$fig" --long --noprogress \
      --out "$work" --panels "$i" ${LONG_ARGS:-} >"$out/${name}_panel$i.log" 2>&1 &
    pids+=($!)
    echo "== $name panel $i: started" | tee -a "$out/long.log"
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
echo "== all panels stopped after $SECONDS s" | tee -a "$out/long.log"
for fig in "$@"; do
  name=$(printf 'fig%02d' "$fig")
  work="$works/$name"
  [ -d "$work" ] || continue
  # shellcheck disable=SC2086
  if "$python" "$root/experiments/figure.py" --fig "$fig" --long --noprogress --out "$work" \
    ${LONG_ARGS:-} --draw_only --publish "$out/$name" >>"$out/long.log" 2>&1; then
    tar -czf "$out/${name}_long.tar.gz" -C "$out" "$name" && rm -rf "${out:?}/$name"
    echo "== $name: drawn and packed" | tee -a "$out/long.log"
  else
    done_panels=$(cd "$work" && ls -d panel*/summary.txt 2>/dev/null | xargs -r -n1 dirname)
    if [ -n "$done_panels" ]; then
      # shellcheck disable=SC2086
      tar -czf "$out/${name}_panels.tar.gz" -C "$work" --exclude checkpoints \
        figure.json timing.json $done_panels
    fi
    echo "== $name: not every panel finished (done: ${done_panels:-none})" | tee -a "$out/long.log"
  fi
done
