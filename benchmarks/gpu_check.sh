#!/usr/bin/env bash
# GPU checks in one go, for a machine with CUDA and torch/torchvision already installed:
#   the tests marked `gpu`, the speed table, every model on CUDA vs CPU at the quick budget, then every
#   model trained with `coursekit train --device cuda` at its full budget (tables).
# Usage: bash benchmarks/gpu_check.sh [MODEL ...]     (default: every model of the course)
# Results (the pytest summary, benchmarks' table, the Mask R-CNN checkpoint) go to ${OUT:-gpu-results}/.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-results}"
mkdir -p "$OUT"
# Our package without touching the machine's torch: install without dependencies, else use the source tree.
python -m pip install --quiet --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"

echo "== tests marked gpu (each compares CUDA with the CPU)"
timeout 300 python -m pytest tests/ -m gpu -p no:cacheprovider --continue-on-collection-errors -q -rs \
  -W ignore::DeprecationWarning 2>&1 | tee "$OUT/pytest-gpu.txt" | tail -25

echo "== training speed: fp32 / bf16 / bf16 + channels-last / bf16 + compile"
timeout 300 python benchmarks/speed.py --device cuda 2>"$OUT/speed.log" | tee "$OUT/speed.md"

echo "== every model, quick budget, on CUDA and on the CPU side by side (same seed, same budget)"
timeout 300 python benchmarks/train_models.py --quick --devices cuda cpu --threads 8 --markdown \
  2>"$OUT/compare.log" | tee "$OUT/compare.md"

echo "== every model on CUDA at its full (chapter) budget"
timeout 600 python benchmarks/train_models.py --devices cuda --markdown --out-dir "$OUT/checkpoints" "$@" \
  2>"$OUT/train.log" | tee "$OUT/train-table.md"
