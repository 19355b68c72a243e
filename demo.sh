#!/usr/bin/env bash
# The main job: install, then analyse the kvstore sample and check its plans.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
