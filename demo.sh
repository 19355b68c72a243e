#!/usr/bin/env bash
# The main job: install, then build the kvstore sample whole and split by its plans, serve load
# through injected crashes, and print what each build did (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
