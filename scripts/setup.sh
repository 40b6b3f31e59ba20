#!/usr/bin/env bash
# Create .venv and install coursekit with the pinned versions; a no-op when nothing changed.
# Sourced by scripts/book.sh and scripts/test.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"

# Our pins replace any machine-wide pip constraint (an environment variable outranks pip's config files).
export PIP_CONSTRAINT="$ROOT/requirements/constraints.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp="$VENV/.coursekit-installed"
want="$(cat "$ROOT/requirements/constraints.txt" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing pinned dependencies (first run: about 2 minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[book,test]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
  "$VENV/bin/python" -c "import coursekit, torch, torchvision, jupyter_book" \
    || { echo "[setup] installation failed: see the pip messages above" >&2; exit 1; }
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"

# ensure_tool COMMAND WHAT PACKAGE...: a system tool (or, for a COMMAND that starts with /, a file) some
# checks need. Installed when we can (root with apt, as in CI); otherwise we say how, and the tests that need
# it are skipped with that reason.
ensure_tool() {
  local command="$1" what="$2"; shift 2
  case "$command" in
    /*) [ -e "$command" ] && return 0 ;;
    *) command -v "$command" >/dev/null 2>&1 && return 0 ;;
  esac
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing $* ($what)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >&2 \
      || echo "[setup] could not install $*: the tests that need $what will be skipped" >&2
  else
    echo "[setup] $command not found: install $* (e.g. apt-get install $*) for $what;" \
         "the tests that need it are skipped until then" >&2
  fi
}

# `coursekit grade` runs each student's kernel in a bubblewrap sandbox (book/instructors.md).
ensure_tool bwrap "the grader's sandbox" bubblewrap
# Real Fashion-MNIST (the four original IDX .gz files) for the loader's tests and for COURSEKIT_DATA=fashion
# with COURSEKIT_DATA_ROOT=/usr/share/datasets.
ensure_tool /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz "real Fashion-MNIST" dataset-fashion-mnist
