#!/usr/bin/env bash
# Command 2: run every check (unit and maths tests, the grader, and the quick build of the book, which
# executes every chapter once and fails on any cell error or failed assert), in quick mode.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k sparse`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
ensure_tool chromedriver "the browser tests of the built book" chromium chromium-driver
cd "$ROOT"
export COURSEKIT_QUICK=1 TQDM_DISABLE=1 PYTHONHASHSEED=0
exec python -m pytest -n 2 --dist loadscope -p no:cacheprovider "$@"
