"""Size and deviation of each conversion (float16, bfloat16, 8-bit, 4-bit) from the transformers
reference, on a randomly initialised ModernBERT-base-shaped token classifier made offline.

Usage: python benchmarks/conversion_precision.py [--work DIR] [--layers 22]
Prints the table that docs/conversion.md records. Needs the test extra (torch, transformers).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from anno_mlx.convert import convert

from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

VARIANTS = [
    ("float32", {}),
    ("float16", dict(dtype="float16")),
    ("bfloat16", dict(dtype="bfloat16")),
    ("8-bit, group 64", dict(quantize=True, q_bits=8, q_group_size=64)),
    ("4-bit, group 64", dict(quantize=True, q_bits=4, q_group_size=64)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--layers", type=int, default=22)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="anno-precision-"))
    src = make_tiny_checkpoint(
        work / "hf",
        head="token-classification",
        hidden_size=768,
        intermediate_size=1152,
        num_hidden_layers=args.layers,
        num_attention_heads=12,
        local_attention=128,
        vocab_size=50368,
    )
    print("| output | size | max abs diff vs float32 reference | argmax agreement | convert + verify |")
    print("|---|---|---|---|---|")
    for i, (name, options) in enumerate(VARIANTS):
        start = time.perf_counter()
        summary = convert(src, work / f"out{i}", force=True, verify=True, log=lambda m: None, **options)
        result = summary["verify"]
        print(
            f"| {name} | {summary['size_mb']:.0f} MB | {result['max_abs_diff']:.2g} | "
            f"{100 * result['argmax_agreement']:.1f} % | {time.perf_counter() - start:.0f} s |",
            flush=True,
        )


if __name__ == "__main__":
    main()
