"""Is a batch ever slower than one call per text? Each measurement in its own fresh process,
interleaved round by round, on the built-in model (`--backend`, default mlx):

- `mixed`: one ~2,000-token document and 7 short texts (`NER.batch` vs eight `NER` calls);
- `tweets`: 300 tweet-sized texts (`NER.batch` vs 300 calls);
- `encoder`: the `mixed` texts through `Encoder.encode_batch` vs `Encoder.encode` one at a time.

`python benchmarks/batching.py [--backend mlx|torch] [--rounds 3]` prints seconds (median round)
and batch / one-at-a-time for each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
workload, how, backend = sys.argv[1:4]
from anno_mlx import NER, Encoder
from anno_mlx.loading import DEFAULT_MODEL
texts = json.loads(sys.stdin.read())[workload if workload != "encoder" else "mixed"]
if workload == "encoder":
    model = Encoder.from_pretrained(DEFAULT_MODEL, backend=backend)
    batch, single = model.encode_batch, model.encode
else:
    model = NER.from_pretrained(backend=backend)
    batch, single = model.batch, model
single(texts[-1])  # warm-up
start = time.perf_counter()
if how == "batch":
    batch(texts)
else:
    for text in texts:
        single(text)
print(json.dumps(time.perf_counter() - start))
"""

LONG = (
    "The committee met in Geneva on Tuesday. Representatives of the World Health Organization, "
    "Médecins Sans Frontières and the Red Cross discussed the outbreak with officials from Kenya, "
    "Uganda and Tanzania, while Dr. Amina Yusuf of Nairobi University presented new figures. "
)
SHORT = [
    "Just landed in Paris with @marie for the OECD meeting #travel",
    "Apple and Microsoft shares fell on Tuesday after the Fed spoke",
    "Angela Merkel met Emmanuel Macron in Berlin",
    "Watching Real Madrid vs Barcelona tonight!!",
    "The United Nations warned of floods in Bangladesh",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="mlx", choices=["mlx", "torch"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    data = {
        "mixed": [LONG * 40] + [SHORT[i % 5] + f" ({i})" for i in range(7)],
        "tweets": [SHORT[i % 5] + f" ({i})" for i in range(300)],
    }
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for workload in ("mixed", "tweets", "encoder"):
            for how in ("batch", "single"):
                out = subprocess.run(
                    [sys.executable, "-c", WORKER, workload, how, args.backend],
                    input=json.dumps(data),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                seconds.setdefault((workload, how), []).append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"built-in model, backend {args.backend}, each measurement in a fresh process, {args.rounds} rounds"
    )
    for workload in ("mixed", "tweets", "encoder"):
        batch = statistics.median(seconds[(workload, "batch")])
        single = statistics.median(seconds[(workload, "single")])
        print(
            f"{workload:<8} batch {batch:6.2f} s   one at a time {single:6.2f} s   batch/single {batch / single:4.2f}"
        )


if __name__ == "__main__":
    main()
