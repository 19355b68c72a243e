#!/usr/bin/env bash
# Installs, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
