#!/usr/bin/env bash
# The default model's training stages (train, then continue) on a lent NVIDIA GPU, then the
# float16 conversion; the model comes back in $OUT (tar, split in 15 MB parts) with the log.
# The GPU machine has no network: MLX's CPU wheels travel in .whl/ (scripts/gpu_machine.sh), the
# labelled data (train.corrected.jsonl, train-augmented.corrected.jsonl, dev.corrected.jsonl from
# the correct stage) in build/gpu/, or packed as build/gpu/data.tar.xz. LIMIT (seconds) bounds the
# training; the best epoch so far is on disk whenever it stops.
# On an H100 the base phase runs at ~110,000 tokens/s (its first epoch ~70,000), the continued
# phase ~87,000 with two other trainings beside it: both phases and the conversion in a few minutes.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
exec > >(tee -a "$OUT/session.log") 2>&1
REPO=$PWD
DATA=${DATA:-$REPO/build/gpu}
DEVICE=${DEVICE:-cuda}
WORK=/tmp/work
if [ -f "$DATA/data.tar.xz" ]; then mkdir -p /tmp/data && tar xJf "$DATA/data.tar.xz" -C /tmp/data && DATA=/tmp/data; fi
source scripts/gpu_machine.sh
cd /tmp
started=$(date +%s)
since() { echo "[$(( $(date +%s) - started )) s] $*"; }
nvidia-smi 2>/dev/null --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, mlx.core as mx; print('torch', torch.__version__, 'mlx', mx.__version__)"

mkdir -p $WORK
for f in train.corrected.jsonl train-augmented.corrected.jsonl dev.corrected.jsonl; do ln -sf "$DATA/$f" $WORK/$f; done
recipe() { python3 "$REPO/scripts/build_default_model.py" --work $WORK --backend torch --device $DEVICE "$@" >> "$OUT/train.log" 2>&1; }
since "train, continue"
export WORK REPO OUT DEVICE
export -f recipe
timeout "${LIMIT:-540}" bash -c "recipe --stage train && recipe --stage continue"
echo "exit $?"
tr '\r' '\n' < "$OUT/train.log" | grep -E "^epoch [0-9]+:|training on|wrote|Error|error"
cat $WORK/base-time.json $WORK/continued-time.json 2>/dev/null; echo
if [ -f $WORK/model/config.json ]; then
    recipe --stage ship --ship-to "$OUT/model" && tar cf "$OUT/model.tar" -C "$OUT" model && rm -rf "$OUT/model" \
        && split -b 15M "$OUT/model.tar" "$OUT/model.tar.part-" && rm "$OUT/model.tar"
fi
since "done"
