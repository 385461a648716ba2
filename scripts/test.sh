#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then the whole test suite on the CPU.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
JAX_PLATFORMS=cpu .venv/bin/python -m pytest -q "$@"
