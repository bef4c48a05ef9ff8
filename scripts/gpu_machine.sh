# Sourced by the scripts that run on a lent NVIDIA GPU machine (benchmarks/cuda_session.sh,
# scripts/default_model/train_on_gpu.sh), from the checkout's root. That machine has no
# network and no MLX: MLX's CPU wheels travel in .whl/ and are installed into /tmp/site, and
# anno_mlx is laid out as installed (convert/ and ui/ inside it) in /tmp/pkg, without a build
# step. Run `python -m anno_mlx` from outside the checkout afterwards: `python -m` puts the
# current folder first on sys.path, where anno_mlx/ lacks convert/ and ui/.
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=true
if ! python3 -c "import mlx.core" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
rm -rf /tmp/pkg && mkdir -p /tmp/pkg && cp -r anno_mlx /tmp/pkg/ && cp -r convert /tmp/pkg/anno_mlx/convert && cp -r ui /tmp/pkg/anno_mlx/ui
export PYTHONPATH=/tmp/pkg${PYTHONPATH:+:$PYTHONPATH}
