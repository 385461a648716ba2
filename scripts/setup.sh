#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: a virtual environment in .venv with the pinned
# versions of constraints.txt, and Debian's Fashion-MNIST files (the offline dataset).
# Quick when already done: the install is skipped while pyproject.toml and
# constraints.txt are unchanged.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.lowrank-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the pinned packages into .venv (log: .venv/install.log)" >&2
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'; } \
      > .venv/install.log 2>&1; then
    tail -n 40 .venv/install.log >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# The offline dataset: Debian installs the original Fashion-MNIST files under
# /usr/share/datasets/fashion-mnist. Only attempted as root with apt-get present.
fmnist=/usr/share/datasets/fashion-mnist
if [ ! -f "$fmnist/train-images-idx3-ubyte.gz" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } \
      >/dev/null || echo "setup: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped" >&2
  else
    echo "setup: $fmnist missing and apt-get not usable (need root); run: sudo apt-get install dataset-fashion-mnist" >&2
  fi
fi
