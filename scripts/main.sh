#!/usr/bin/env bash
# The main job: set up (idempotent), then train the default config (MLP-BN on
# Fashion-MNIST, a weight-decay sweep) into workdirs/default. Extra arguments are passed
# on to lowrank.main, e.g. --config.train.epochs=2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/python -m lowrank.main --config=configs/default.py --workdir=workdirs/default "$@"
