#!/usr/bin/env bash
# Command 2: run every check (unit and maths tests, notebooks under nbval, the grader, the book build),
# in quick mode. Extra arguments go to pytest, e.g. `bash scripts/test.sh -k sparse`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
export COURSEKIT_QUICK=1 TQDM_DISABLE=1 PYTHONHASHSEED=0
exec python -m pytest -n 2 --dist loadscope --nbval-lax -p no:cacheprovider "$@"
