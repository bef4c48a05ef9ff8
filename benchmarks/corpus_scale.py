"""`corpus` on one process against `corpus --ray` (local Ray, N actors), same input, one run.

Each run is `python -m anno_mlx corpus …` in a fresh process, timed from start to exit (Ray's
start-up included, since a user pays it); the outputs are checked to hold the same rows.

    python benchmarks/corpus_scale.py [--documents 2000] [--actors 1 2] [--backend mlx]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "ui" / "examples"


def write_corpus(path: Path, n: int) -> int:
    """`n` documents (paragraphs of the UI's examples) as Parquet; returns their words."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paragraphs = [
        p.strip()
        for f in sorted(EXAMPLES.glob("*.txt"))
        for p in f.read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]
    texts = [paragraphs[i % len(paragraphs)] for i in range(n)]
    pq.write_table(pa.table({"id": [f"doc{i}" for i in range(n)], "text": texts}), path)
    return sum(len(t.split()) for t in texts)


def rows(folder: Path) -> list[tuple]:
    import pyarrow.parquet as pq

    table = pq.read_table([str(p) for p in sorted(folder.glob("*.parquet"))]).to_pylist()
    return sorted((r["doc_id"], r["start"], r["end"], r["label"], round(r["score"], 5)) for r in table)


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", default="mlx")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="anno-corpus-bench-"))
    source = work / "corpus.parquet"
    words = write_corpus(source, args.documents)
    base = [sys.executable, "-m", "anno_mlx", "corpus", str(source), "--backend", args.backend]

    local = timed(base + ["-o", str(work / "local")])
    reference = rows(work / "local")
    print(f"{args.documents:,} documents, {words:,} words, backend {args.backend}")
    print(f"{'run':<22} {'seconds':>8} {'docs/s':>8} {'vs local':>9}  same rows")
    print(f"{'one process':<22} {local:>8.1f} {args.documents / local:>8.1f} {1.0:>8.2f}x  -")
    for actors in args.actors:
        out = work / f"ray-{actors}"
        seconds = timed(base + ["-o", str(out), "--ray", "--num-actors", str(actors)])
        same = rows(out) == reference
        print(
            f"{f'ray, {actors} actor(s)':<22} {seconds:>8.1f} {args.documents / seconds:>8.1f} {local / seconds:>8.2f}x  {same}"
        )


if __name__ == "__main__":
    main()
