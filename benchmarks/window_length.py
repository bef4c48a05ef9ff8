"""One long pass vs shorter windows for the same document, same model, same run.

ModernBERT's global layers are quadratic in the window; on a CPU, shorter windows can be faster
at the cost of cross-window context. Usage:
    python benchmarks/window_length.py MODEL_DIR [--lengths 1024 8192] [--chars 8000] [--file F]
Prints tokens/s per max_length and the ratio to the first one.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from anno_mlx import NER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192])
    parser.add_argument("--chars", type=int, default=8000)
    parser.add_argument("--file", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "ner.md")
    args = parser.parse_args()
    source = args.file.read_text(encoding="utf-8")
    text = (source * (args.chars // len(source) + 1))[: args.chars]
    baseline = None
    for length in args.lengths:
        ner = NER.from_pretrained(args.model, max_length=length)
        n = len(ner.tokenizer.tokenize(text))
        start = time.perf_counter()
        ner(text)
        rate = n / (time.perf_counter() - start)
        baseline = baseline or rate
        print(f"max_length {length:>5}: {n} tokens, {rate:8.1f} tokens/s, {rate / baseline:.2f}x the first")


if __name__ == "__main__":
    main()
