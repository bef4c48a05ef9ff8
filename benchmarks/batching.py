"""Is a batch ever slower than one call per text, and what does packing buy? Each measurement in
its own fresh process, interleaved round by round, on the built-in model (`--backend`, default mlx):

- `mixed`: one ~2,400-token document and 7 short texts;
- `long+63`: one ~4,000-token document and 63 short texts (13-22 tokens);
- `tweets`: 300 tweet-sized texts;
- `encoder`: the `mixed` texts through `Encoder` (`encode_batch` against `encode` one at a time).

Each workload runs three ways: `NER.batch` with packed rows (the default for ModernBERT:
`batching.pack_rows`), `NER.batch` with padded batches (`packing = False`: one text per row,
grouped by length) and one call per text.

`python benchmarks/batching.py [--backend mlx|torch] [--rounds 3] [--row-tokens N]` prints seconds
(median round) and the ratios packed / padded, packed / one at a time and padded / one at a time;
`--row-tokens` packs into rows of N tokens instead of `batching.PACKED_ROW_TOKENS`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
workload, how, backend, row_tokens = sys.argv[1:5]
import anno_mlx.batching
from anno_mlx import NER, Encoder
if int(row_tokens):
    anno_mlx.batching.PACKED_ROW_TOKENS = int(row_tokens)
from anno_mlx.loading import DEFAULT_MODEL
texts = json.loads(sys.stdin.read())[workload if workload != "encoder" else "mixed"]
if workload == "encoder":
    model = Encoder.from_pretrained(DEFAULT_MODEL, backend=backend)
    batch, single = model.encode_batch, model.encode
else:
    model = NER.from_pretrained(backend=backend)
    batch, single = model.batch, model
model.packing = how == "packed"
single(texts[-1])  # warm-up
start = time.perf_counter()
if how == "single":
    for text in texts:
        single(text)
else:
    batch(texts)
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
WORKLOADS = ("mixed", "long+63", "tweets", "encoder")
HOWS = ("packed", "padded", "single")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="mlx", choices=["mlx", "torch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--row-tokens", type=int, default=0, help="tokens per packed row (0: the default)")
    args = parser.parse_args()
    data = {
        "mixed": [LONG * 40] + [SHORT[i % 5] + f" ({i})" for i in range(7)],
        "long+63": [LONG * 65] + [SHORT[i % 5] + f" ({i})" for i in range(63)],
        "tweets": [SHORT[i % 5] + f" ({i})" for i in range(300)],
    }
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for workload in WORKLOADS:
            for how in HOWS:
                out = subprocess.run(
                    [sys.executable, "-c", WORKER, workload, how, args.backend, str(args.row_tokens)],
                    input=json.dumps(data),
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                seconds.setdefault((workload, how), []).append(json.loads(out.strip().splitlines()[-1]))
    rows = args.row_tokens or "default"
    print(
        f"built-in model, backend {args.backend}, packed rows of {rows} tokens, "
        f"each measurement in a fresh process, {args.rounds} rounds"
    )
    for workload in WORKLOADS:
        packed, padded, single = (statistics.median(seconds[(workload, how)]) for how in HOWS)
        print(
            f"{workload:<8} packed {packed:6.2f} s  padded {padded:6.2f} s  one at a time {single:6.2f} s"
            f"   packed/padded {packed / padded:4.2f}  packed/single {packed / single:4.2f}"
            f"  padded/single {padded / single:4.2f}"
        )


if __name__ == "__main__":
    main()
