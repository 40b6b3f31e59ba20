#!/usr/bin/env bash
# Command 1: build the book into _build/html (set-up included), executing every chapter at full fidelity,
# one kernel per core (scripts/build_book.py), then rendering the pages with Jupyter Book.
# COURSEKIT_QUICK=1 bash scripts/book.sh builds a quick preview (small data, few epochs) instead.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# One CPU thread per kernel: multi-threaded CPU kernels sum in a different order, and short trainings
# (SegNet's, for one) then drift from the numbers the chapters' text quotes. One thread repeats them exactly.
export TQDM_DISABLE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec python "$ROOT/scripts/build_book.py" --path-output "$ROOT" -W -n --keep-going "$@"
