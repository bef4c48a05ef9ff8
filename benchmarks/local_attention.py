"""Banded local attention vs a dense L x L windowed mask, one ModernBERT-base local layer.

Two thirds of ModernBERT's layers see only 129 keys per token; a dense mask makes them do
L keys of work each. This prints both timings on the same machine, in the same run, and the
ratio, for a few sequence lengths. Usage: python benchmarks/local_attention.py [--lengths 1024 8192]
"""

from __future__ import annotations

import argparse
import time

import mlx.core as mx

import anno_mlx  # noqa: F401  (loads OpenBLAS before MLX on Linux)
from anno_mlx.models.modernbert import LOCAL, ModelArgs
from anno_mlx.models.modernbert.mlx_model import Attention, AttentionMasks, make_masks


def timed(fn, repeat: int) -> float:
    mx.eval(fn())  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        mx.eval(fn())
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 8192])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    config = ModelArgs.from_dict({})  # ModernBERT-base sizes
    layer = Attention(config, LOCAL)
    mx.eval(layer.parameters())
    print(f"{'tokens':>7} {'dense ms':>9} {'banded ms':>10} {'speed-up':>9} {'max |diff|':>11}")
    for length in args.lengths:
        x = mx.random.normal((1, length, config.hidden_size))
        banded = make_masks(None, 1, length, config.half_window)
        pos = mx.arange(length)
        dense = AttentionMasks(
            None, (mx.abs(pos[:, None] - pos[None, :]) <= config.half_window)[None, None], banded=False
        )
        t_dense = timed(lambda: layer(x, dense), args.repeat)
        t_banded = timed(lambda: layer(x, banded), args.repeat)
        diff = mx.abs(layer(x, dense) - layer(x, banded)).max().item()
        print(
            f"{length:>7} {1e3 * t_dense:>9.1f} {1e3 * t_banded:>10.1f} {t_dense / t_banded:>8.2f}x {diff:>11.2e}"
        )


if __name__ == "__main__":
    main()
