#!/usr/bin/env bash
# Training-step and forward timings of ifcn and PyTorch on this machine, one JSON line each.
#   bench/engine_vs_pytorch.sh [STEPS] [CONFIGS...]   configs as C:P, default 16:64 32:64 64:64
# Needs a release build (swift build -c release) and, for the PyTorch lines, pip install torch.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-5}"; shift || true
configs=("${@:-16:64 32:64 64:64}")
read -r -a configs <<< "${configs[*]}"
for cp in "${configs[@]}"; do
    c="${cp%%:*}"; p="${cp##*:}"
    .build/release/ifcn bench --variant paper --channels "$c" --patch "$p" --steps "$steps" --json 2>/dev/null
    if python3 -c "import torch" 2>/dev/null; then
        python3 bench/pytorch_step.py --variant paper --channels "$c" --patch "$p" --steps "$steps" --json 2>/dev/null
    fi
done
