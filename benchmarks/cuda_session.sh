#!/usr/bin/env bash
# Everything this project measures on an NVIDIA GPU, as one script (a lent GPU machine has no
# network: MLX's CPU wheels travel in .whl/, the silver data in build/default-model/).
#   1. the default model's recipe, train stage on CUDA, then the float16 conversion;
#   2. python -m anno_mlx bench --device cuda --no-mlx (full size);
#   3. the CUDA tests (bfloat16/float32 parity with the CPU, training on CUDA).
# Outputs go to $OUT (default ./cuda-out). Each step has its own time limit so that what ran
# comes back even when a step runs long.
set -u
OUT=${OUT:-cuda-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=true
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    # anno_mlx laid out as installed (convert/ and ui/ inside it), without a build step
    rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r anno_mlx /tmp/pkg/ && cp -r convert /tmp/pkg/anno_mlx/convert && cp -r ui /tmp/pkg/anno_mlx/ui
    export PYTHONPATH=/tmp/pkg:/tmp/site
fi
# Run from outside the checkout: `python -m` puts the current folder first on sys.path, where
# anno_mlx/ lacks convert/ and ui/.
REPO=$PWD
OUT=$(realpath "$OUT")
cd /tmp
started=$(date +%s)
since() { echo "[$(( $(date +%s) - started )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 
python3 -c "import torch, transformers, mlx.core as mx, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'mlx', mx.__version__, 'tokenizers', tokenizers.__version__, 'cpus', __import__('os').cpu_count())" 

since "1. default model: train on CUDA"
timeout 200 python3 $REPO/scripts/build_default_model.py --work $REPO/build/default-model --stage train --backend torch --device cuda > "$OUT/train.log" 2>&1
echo "train exit $?"; grep -E "^epoch|training on|wrote" "$OUT/train.log" | tr '\r' '\n' | grep -E "^epoch [0-9]+:|training on|wrote"
timeout 60 python3 $REPO/scripts/build_default_model.py --work $REPO/build/default-model --stage ship --ship-to "$OUT/model" >> "$OUT/train.log" 2>&1
echo "ship exit $?"
cat $REPO/build/default-model/train-time.json >> "$OUT/train.log" 2>/dev/null
tar cf "$OUT/model.tar" -C "$OUT" model && rm -rf "$OUT/model" && split -b 15M "$OUT/model.tar" "$OUT/model.tar.part-" && rm "$OUT/model.tar"

since "2. bench on CUDA"
timeout 170 python3 -m anno_mlx bench --device cuda --no-mlx 2>&1 | grep -v Warning

since "3. CUDA tests"
timeout 80 python3 -m pytest -q -p no:cacheprovider --rootdir $REPO $REPO/tests/test_torch_backend.py -k "cuda" "$REPO/tests/test_train.py::test_tiny_model_from_scratch_learns_the_task" 2>&1 | tail -15
# 4. with the time left (the call's limit is 600 s): the same recipe with 12 epochs, to see
#    what longer training buys; the best epoch so far is on disk whenever it stops.
left=$(( 560 - ($(date +%s) - started) ))
if [ "$left" -gt 60 ]; then
    since "4. 12 epochs, for $left s at most"
    mkdir -p $REPO/build/default-model-12 && cp $REPO/build/default-model/{train,dev}.jsonl $REPO/build/default-model-12/
    timeout $(( left - 30 )) python3 $REPO/scripts/build_default_model.py --work $REPO/build/default-model-12 --stage train --backend torch --device cuda --epochs 12 > "$OUT/train12.log" 2>&1
    tr '\r' '\n' < "$OUT/train12.log" | grep -E "^epoch [0-9]+:"
    timeout 25 python3 $REPO/scripts/build_default_model.py --work $REPO/build/default-model-12 --stage ship --ship-to "$OUT/model12" >> "$OUT/train12.log" 2>&1 \
        && tar cf "$OUT/model12.tar" -C "$OUT" model12 && rm -rf "$OUT/model12" \
        && split -b 15M "$OUT/model12.tar" "$OUT/model12.tar.part-" && rm "$OUT/model12.tar"
fi
since "done"
