#!/usr/bin/env bash
# Run here (with the package registries reachable) before sending the tree to the GPU
# machine: the wheels its Python 3.12 image lacks, at this project's pinned versions,
# into benchmarks/gpu/wheels (ignored by git; ~0.9 MB; pass it in the run's `carry`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
pin() { grep -i "^$1==" ../../constraints.txt | cut -d= -f3; }  # name as pinned
mkdir -p wheels
pip=../../.venv/bin/pip
"$pip" download -q --no-deps -d wheels "ml_collections==$(pin ml_collections)"
"$pip" download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 -d wheels "PyYAML==$(pin PyYAML)"
ls -l wheels
