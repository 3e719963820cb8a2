# Sourced by the scripts: makes (or reuses) the project's virtualenv under $VENV (default .venv).
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
  "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "callq needs Python 3.11, found " + sys.version' \
    || { echo "callq needs Python 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
export PATH="$PWD/$VENV/bin:$PATH"
