"""`python -m anno_mlx …`: one subcommand per job; user mistakes print one line, no traceback."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from .errors import AnnoError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m anno_mlx",
        description="Named-entity recognition with ModernBERT on MLX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    convert = sub.add_parser(
        "convert",
        help="convert a Hugging Face ModernBERT checkpoint (folder or hub id) to MLX",
        description="Convert a Hugging Face ModernBERT checkpoint (local folder or hub id) into an MLX model folder.",
    )
    convert.add_argument("src", help="Hugging Face model folder or hub id (e.g. answerdotai/ModernBERT-base)")
    convert.add_argument("-o", "--output", required=True, help="folder to write (must not exist unless --force)")
    convert.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="cast weights (default: as stored)")
    convert.add_argument("-q", "--quantize", action="store_true", help="quantize linear and embedding weights")
    convert.add_argument("--q-bits", type=int, default=4, choices=[4, 8], help="bits per quantized weight (default 4)")
    convert.add_argument("--q-group-size", type=int, default=64, help="weights per quantization group (default 64)")
    convert.add_argument("--force", action="store_true", help="replace an existing output folder")
    convert.add_argument(
        "--verify",
        action="store_true",
        help="reload the result and report its largest difference from the reference (transformers if installed)",
    )
    convert.set_defaults(run=run_convert)
    return parser


def run_convert(args: argparse.Namespace) -> None:
    from .convert import convert

    convert(
        args.src,
        args.output,
        dtype=args.dtype,
        quantize=args.quantize,
        q_bits=args.q_bits,
        q_group_size=args.q_group_size,
        force=args.force,
        verify=args.verify,
    )


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except AnnoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
