#!/usr/bin/env bash
# Run the SearchSage test suite (installs test tools and Chromium first when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
