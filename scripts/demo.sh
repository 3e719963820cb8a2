#!/usr/bin/env bash
# Quickstart 1: install callq into .venv and run the main job on the embedded default
# (synthetic export, local SQLite MLflow store, files under callq-out/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e .
exec "$VENV/bin/callq" demo "$@"
