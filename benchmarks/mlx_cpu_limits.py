"""Where MLX's CPU time goes in a ModernBERT layer, piece by piece, against PyTorch, float32.

Each case runs in a fresh process of its own (MLX's with the system OpenBLAS loaded first, as
`runners.prepare_mlx` does; PyTorch's with `runners.prepare_torch`), interleaved round by round:

- `gemm`: the layer's matrix products, [L, 768] x [768, 2304] (Wqkv, and Wi: the same shape),
  [L, 768] x [768, 768] (attention Wo) and [L, 1152] x [1152, 768] (MLP Wo), as `x @ W.T`;
- `gelu` [L, 1152] (exact, erf), `exp` [L, 1152], `layernorm` [L, 768] (no bias), `softmax` over [1, 12, L, L], `rope` on
  [1, 12, L, 64] (`mx.fast.rope` against the mirror's `rotate`);
- `sdpa`: fused attention [1, 12, L, 64], no mask; `banded`: the local layers' banded attention
  (window 128), ours in MLX against the PyTorch mirror's;
- MLX only, two changes that would also run on Metal: `gelu_rational`, the exact GELU with erf
  as a rational function (mul/add/div under `mx.compile`), and `sdpa_two_streams`, half the heads
  on each of two CPU streams;
- `layer_global`, `layer_local`: one ModernBERT-base-shaped encoder layer with random weights;
  `layer_*_compiled`: the same MLX layer under `mx.compile` (MLX only).

Every case is timed on one input for about `--seconds` after two warm-up calls; "cpu/wall" is
the process's CPU time (all threads, `getrusage`) over the wall time of the timed calls: 1.0 is
one core busy, 2.0 both. The second table splits MLX's layer time at the layer's length into
the pieces above (each timed alone, so a piece's own dispatch cost is counted once per piece).

`python benchmarks/mlx_cpu_limits.py [--rounds 1] [--seconds 0.4] [--lengths 512 2048]
[--layer-length 1024]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, resource, sys, time
impl, case, L, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
from anno_mlx.models.modernbert import ModelArgs
from anno_mlx.runners import prepare_mlx, prepare_torch

args = ModelArgs.from_dict({})  # ModernBERT-base sizes
H, I, heads, D = args.hidden_size, args.intermediate_size, args.num_attention_heads, args.head_dim
GEMMS = {"gemm_qkv": (H, 3 * H), "gemm_attn_wo": (H, H), "gemm_mlp_wo": (I, H)}
LAYERS = {"layer_global": 3, "layer_local": 1}  # index 0 has no attention norm

if impl == "mlx":
    prepare_mlx()
    import mlx.core as mx
    import mlx.nn as nn
    from anno_mlx.models.modernbert import mlx_model as m

    mx.random.seed(0)
    rand = lambda *shape: mx.random.normal(shape)
    sync = mx.eval
    if case in GEMMS:
        x, w = rand(L, GEMMS[case][0]), rand(GEMMS[case][1], GEMMS[case][0])
        fn = lambda: x @ w.T
    elif case == "gelu":
        x = rand(L, I)
        fn = lambda: nn.gelu(x)
    elif case == "gelu_rational":
        # exact-GELU with Eigen's float32 erf (a rational function on [-4, 4]): mul/add/div only
        P = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
             -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02]
        Q = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
             -1.42647390514189e-02]

        @mx.compile
        def gelu(x):
            z = mx.clip(x * 0.7071067811865476, -4.0, 4.0)
            z2, p, q = z * z, P[0], Q[0]
            for c in P[1:]:
                p = p * z2 + c
            for c in Q[1:]:
                q = q * z2 + c
            return 0.5 * x * (1 + z * p / q)

        x = rand(L, I)
        fn = lambda: gelu(x)
    elif case == "layernorm":
        x, w = rand(L, H), mx.ones((H,))
        fn = lambda: mx.fast.layer_norm(x, w, None, args.norm_eps)
    elif case == "softmax":
        x = rand(1, heads, L, L)
        fn = lambda: mx.softmax(x, axis=-1, precise=True)
    elif case == "rope":
        x = rand(1, heads, L, D)
        fn = lambda: mx.fast.rope(x, D, traditional=False, base=args.global_rope_theta, scale=1.0, offset=0)
    elif case == "sdpa":
        q, k, v = rand(1, heads, L, D), rand(1, heads, L, D), rand(1, heads, L, D)
        fn = lambda: mx.fast.scaled_dot_product_attention(q, k, v, scale=D**-0.5)
    elif case == "sdpa_two_streams":  # half the heads on each of two CPU streams (threads)
        q, k, v = rand(1, heads, L, D), rand(1, heads, L, D), rand(1, heads, L, D)
        streams, half = (mx.new_stream(mx.cpu), mx.new_stream(mx.cpu)), heads // 2
        fn = lambda: [
            mx.fast.scaled_dot_product_attention(
                q[:, i : i + half], k[:, i : i + half], v[:, i : i + half], scale=D**-0.5, stream=s
            )
            for i, s in zip((0, half), streams)
        ]
    elif case == "exp":
        x = rand(L, I)
        fn = lambda: mx.exp(x)
    elif case == "banded":
        q, k, v = rand(1, heads, L, D), rand(1, heads, L, D), rand(1, heads, L, D)
        masks = m.make_masks(None, 1, L, args.half_window)
        mx.eval(masks.local)
        fn = lambda: m.banded_attention(q, k, v, D**-0.5, masks)
    else:
        base = case.removesuffix("_compiled")
        layer = m.EncoderLayer(args, LAYERS[base])
        layer.eval()
        mx.eval(layer.parameters())
        x = rand(1, L, H)
        masks = m.make_masks(None, 1, L, args.half_window)
        mx.eval(masks.local)
        call = mx.compile(lambda h: layer(h, masks)) if case.endswith("_compiled") else (lambda h: layer(h, masks))
        fn = lambda: call(x)
    run = lambda: sync(fn())
else:
    prepare_torch()
    import torch
    import torch.nn.functional as F
    from anno_mlx.models.modernbert import torch_model as t

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    rand = torch.randn
    if case in GEMMS:
        x, w = rand(L, GEMMS[case][0]), rand(GEMMS[case][1], GEMMS[case][0])
        fn = lambda: F.linear(x, w)
    elif case == "gelu":
        x = rand(L, I)
        fn = lambda: F.gelu(x)
    elif case == "exp":
        x = rand(L, I)
        fn = lambda: torch.exp(x)
    elif case == "layernorm":
        x, w = rand(L, H), torch.ones(H)
        fn = lambda: F.layer_norm(x, (H,), w, None, args.norm_eps)
    elif case == "softmax":
        x = rand(1, heads, L, L)
        fn = lambda: F.softmax(x, dim=-1)
    elif case == "rope":
        x = rand(1, heads, L, D)
        table = t.rope_tables(L, D, args.global_rope_theta, "cpu")
        fn = lambda: t.rotate(x, table)
    elif case == "sdpa":
        q, k, v = rand(1, heads, L, D), rand(1, heads, L, D), rand(1, heads, L, D)
        fn = lambda: F.scaled_dot_product_attention(q, k, v)
    elif case == "banded":
        q, k, v = rand(1, heads, L, D), rand(1, heads, L, D), rand(1, heads, L, D)
        ctx = t.make_context(args, None, 1, L, "cpu")
        fn = lambda: t.banded_attention(q, k, v, ctx)
    else:
        layer = t.EncoderLayer(args, LAYERS[case]).eval()
        x = rand(1, L, H)
        ctx = t.make_context(args, None, 1, L, "cpu")
        fn = lambda: layer(x, ctx)
    run = fn

run(); run()  # warm-up
start = time.perf_counter(); run(); once = time.perf_counter() - start
n = max(3, min(500, int(seconds / max(once, 1e-6))))
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
start = time.perf_counter()
for _ in range(n):
    run()
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"us": 1e6 * wall / n, "cpu_per_wall": (usage.ru_utime + usage.ru_stime - cpu0) / wall, "n": n}))
"""

HIDDEN, INTERMEDIATE = 768, 1152
GEMM_SHAPES = {
    "gemm_qkv": (HIDDEN, 3 * HIDDEN),
    "gemm_attn_wo": (HIDDEN, HIDDEN),
    "gemm_mlp_wo": (INTERMEDIATE, HIDDEN),
}
LABELS = {
    "gemm_qkv": "Wqkv/Wi  [L,768]x[768,2304]",
    "gemm_attn_wo": "attn Wo  [L,768]x[768,768]",
    "gemm_mlp_wo": "mlp Wo   [L,1152]x[1152,768]",
    "gelu": "gelu     [L,1152]",
    "gelu_rational": "gelu, compiled rational erf",
    "exp": "exp      [L,1152]",
    "layernorm": "layernorm [L,768]",
    "softmax": "softmax  [1,12,L,L]",
    "rope": "rope     [1,12,L,64]",
    "sdpa": "sdpa     [1,12,L,64]",
    "sdpa_two_streams": "sdpa, heads on 2 CPU streams",
    "banded": "banded attention, w=128",
    "layer_global": "layer, global",
    "layer_local": "layer, local",
    "layer_global_compiled": "layer, global, mx.compile",
    "layer_local_compiled": "layer, local, mx.compile",
}
MLX_ONLY = ("gelu_rational", "sdpa_two_streams", "layer_global_compiled", "layer_local_compiled")


def cases(lengths: list[int], layer_length: int) -> list[tuple[str, int]]:
    """Every (case, length) to time: the products at every length and the layer's, the rest at
    the layer's length (attention also at the longest)."""
    gemm_lengths = sorted(set(lengths) | {layer_length})
    out = [(case, L) for case in GEMM_SHAPES for L in gemm_lengths]
    out += [(case, layer_length) for case in ("gelu", "gelu_rational", "exp", "layernorm", "softmax", "rope")]
    attention_lengths = sorted({layer_length, max(lengths + [layer_length])})
    out += [(case, L) for case in ("sdpa", "sdpa_two_streams", "banded") for L in attention_lengths]
    out += [(case, layer_length) for case in LABELS if case.startswith("layer_")]
    return out


def measure(impl: str, case: str, length: int, seconds: float) -> dict[str, float]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    out = subprocess.run(
        [sys.executable, "-c", WORKER, impl, case, str(length), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def gflops(case: str, length: int, us: float) -> str:
    if case not in GEMM_SHAPES:
        return ""
    k, n = GEMM_SHAPES[case]
    return f"{2 * length * k * n / us / 1e3:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.4, help="timed seconds per case")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--layer-length", type=int, default=1024)
    args = parser.parse_args()

    todo = cases(args.lengths, args.layer_length)
    results: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for case, length in todo:
            impls = ["mlx"] if case in MLX_ONLY else ["mlx", "torch"]
            for impl in impls if round_ % 2 == 0 else impls[::-1]:
                results.setdefault((impl, case, length), []).append(measure(impl, case, length, args.seconds))

    def median(impl: str, case: str, length: int, key: str) -> float | None:
        runs = results.get((impl, case, length))
        return statistics.median(r[key] for r in runs) if runs else None

    print(
        f"float32, each case in its own process, {args.rounds} round(s), ~{args.seconds} s timed per case; "
        f"cpu/wall: CPU seconds of the process over wall seconds (2 cores here)"
    )
    header = (
        f"{'case':<30} {'L':>5} {'MLX us':>9} {'torch us':>9} {'MLX/torch':>9} "
        f"{'MLX GF/s':>8} {'torch GF/s':>10} {'MLX cpu/wall':>12} {'torch cpu/wall':>14}"
    )
    print(header)
    for case, length in todo:
        mlx_us, torch_us = median("mlx", case, length, "us"), median("torch", case, length, "us")
        mlx_par, torch_par = (median(i, case, length, "cpu_per_wall") for i in ("mlx", "torch"))
        ratio = f"{mlx_us / torch_us:.2f}" if torch_us else "-"
        torch_time = f"{torch_us:.0f}" if torch_us else "-"
        torch_cores = f"{torch_par:.2f}" if torch_par else "-"
        torch_rate = gflops(case, length, torch_us) if torch_us else ""
        print(
            f"{LABELS[case]:<30} {length:>5} {mlx_us:>9.0f} {torch_time:>9} {ratio:>9} "
            f"{gflops(case, length, mlx_us):>8} {torch_rate:>10} {mlx_par:>12.2f} {torch_cores:>14}"
        )

    L = args.layer_length
    print(f"\nMLX layer at L={L}, split into its pieces (each timed alone), against PyTorch's")
    shared = {
        "gemm_qkv": 2,  # Wqkv and Wi
        "gemm_attn_wo": 1,
        "gemm_mlp_wo": 1,
        "layernorm": 2,
        "rope": 2,  # q and k
        "gelu": 1,
    }
    for kind, attention in (("global", "sdpa"), ("local", "banded")):
        pieces = dict(shared, **{attention: 1})
        print(f"{kind}: {'piece':<28} {'MLX ms':>7} {'share':>6} {'torch ms':>8} {'MLX/torch':>9}")
        totals = {}
        for impl in ("mlx", "torch"):
            totals[impl] = median(impl, f"layer_{kind}", L, "us")
        for case, count in pieces.items():
            mlx_us = count * median("mlx", case, L, "us")
            torch_us = count * median("torch", case, L, "us")
            name = f"{count} x {LABELS[case]}" if count > 1 else LABELS[case]
            print(
                f"        {name:<28} {mlx_us / 1e3:>7.2f} {mlx_us / totals['mlx']:>6.0%} "
                f"{torch_us / 1e3:>8.2f} {mlx_us / torch_us:>9.2f}"
            )
        rest = {
            impl: totals[impl] - sum(c * median(impl, case, L, "us") for case, c in pieces.items())
            for impl in ("mlx", "torch")
        }
        print(
            f"        {'rest (adds, copies, dispatch)':<28} {rest['mlx'] / 1e3:>7.2f} "
            f"{rest['mlx'] / totals['mlx']:>6.0%} {rest['torch'] / 1e3:>8.2f}"
        )
        compiled = median("mlx", f"layer_{kind}_compiled", L, "us")
        print(
            f"        {'whole layer':<28} {totals['mlx'] / 1e3:>7.2f} {'100%':>6} "
            f"{totals['torch'] / 1e3:>8.2f} {totals['mlx'] / totals['torch']:>9.2f}"
            f"   (mx.compile: {compiled / 1e3:.2f} ms)"
        )


if __name__ == "__main__":
    main()
