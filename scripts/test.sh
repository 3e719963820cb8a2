#!/usr/bin/env bash
# Quickstart 2: install callq with its test tools into .venv and run the whole test suite
# (lint, unit, property, training, PostgreSQL and headless-browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$VENV/bin/pip" install --quiet --disable-pip-version-check -e '.[test]'
# The browser test drives Debian's Chromium; install it when it is missing (needs root or sudo).
if [ -z "${CALLQ_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/pytest" "$@"
