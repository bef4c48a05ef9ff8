#!/usr/bin/env bash
# What this project measures on an NVIDIA GPU, as one script (a lent GPU machine has no
# network: MLX's CPU wheels travel in .whl/). The default model's training on a GPU has its own
# script, scripts/default_model/train_on_gpu.sh.
#   1. python -m anno_mlx bench --device cuda --no-mlx (full size);
#   2. the CUDA tests (bfloat16/float32 parity with the CPU, training on CUDA).
# Outputs go to $OUT (default ./cuda-out). Each step has its own time limit so that what ran
# comes back even when a step runs long.
set -u
OUT=${OUT:-cuda-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
source scripts/gpu_machine.sh
REPO=$PWD
OUT=$(realpath "$OUT")
cd /tmp
started=$(date +%s)
since() { echo "[$(( $(date +%s) - started )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 
python3 -c "import torch, transformers, mlx.core as mx, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'mlx', mx.__version__, 'tokenizers', tokenizers.__version__, 'cpus', __import__('os').cpu_count())" 

since "1. bench on CUDA"
timeout 170 python3 -m anno_mlx bench --device cuda --no-mlx 2>&1 | grep -v Warning

since "2. CUDA tests"
timeout 80 python3 -m pytest -q -p no:cacheprovider --rootdir $REPO $REPO/tests/test_torch_backend.py -k "cuda" "$REPO/tests/test_train.py::test_tiny_model_from_scratch_learns_the_task" 2>&1 | tail -15
since "done"
