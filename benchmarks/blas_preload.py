"""Does loading OpenBLAS for MLX slow a PyTorch-backend process? Each variant in its own fresh
process, interleaved round by round, on the built-in model with tweet-sized texts:

- `as shipped`: `NER.from_pretrained(backend="torch")`, the library choosing what to load;
- `preload forced`: the Debian OpenBLAS loaded first, as every process did when `import anno_mlx`
  loaded it (the old behaviour, kept here as the baseline this change is measured against);
- `mlx`: the same texts on the MLX backend (OpenBLAS loaded, as it should be).

`python benchmarks/blas_preload.py [--texts 200] [--rounds 3]` prints words/s per variant (median
round) and each as a ratio to `preload forced`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
backend, force = sys.argv[1], sys.argv[2] == "1"
if force:
    from anno_mlx._blas import preload_openblas
    preload_openblas()
from anno_mlx import NER
texts = json.loads(sys.stdin.read())
ner = NER.from_pretrained(backend=backend)
ner(texts[0])  # warm-up
start = time.perf_counter()
for text in texts:
    ner(text)
seconds = time.perf_counter() - start
print(json.dumps({"words": sum(len(t.split()) for t in texts), "seconds": seconds, "runs_on": ner.runs_on}))
"""

SENTENCES = [
    "Just landed in Paris with @marie for the OECD meeting #travel",
    "Apple and Microsoft shares fell on Tuesday after the Fed said rates stay high",
    "Angela Merkel met Emmanuel Macron in Berlin to talk about the EU budget",
    "Watching Real Madrid vs Barcelona at the Bernabeu tonight!!",
    "The United Nations warned of floods in Bangladesh and eastern India",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    texts = [f"{SENTENCES[i % len(SENTENCES)]} ({i})" for i in range(args.texts)]
    variants = {
        "as shipped (torch)": ("torch", "0"),
        "preload forced (torch)": ("torch", "1"),
        "mlx": ("mlx", "0"),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    described = {}
    for _ in range(args.rounds):
        for name, (backend, force) in variants.items():
            out = subprocess.run(
                [sys.executable, "-c", WORKER, backend, force],
                input=json.dumps(texts),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            rates[name].append(result["words"] / result["seconds"])
            described[name] = result["runs_on"]
    base = statistics.median(rates["preload forced (torch)"])
    print(
        f"{args.texts} tweet-sized texts, built-in model, each variant in a fresh process, {args.rounds} rounds"
    )
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<26} {median:8.0f} words/s  {median / base:5.2f}x   {described[name]}")


if __name__ == "__main__":
    main()
