"""Our MLX path, our PyTorch path and transformers' ModernBERT, each timed in its own fresh process.

The benchmark lives in the package (`anno_mlx/bench/throughput.py`) so that `python -m anno_mlx bench` runs
it on any installation; this script is the same entry point from a checkout:
    python benchmarks/throughput.py [--quick] [--device cuda] [--only a b c d] [--busy N]
"""

from anno_mlx.bench.throughput import main

if __name__ == "__main__":
    main()
