"""Throughput of `serve` under concurrent clients, against the library called directly.

Each side runs in its own fresh process: the baseline calls `NER` once per document in a
process of its own; the server is `python -m anno_mlx serve` (web app mounted, as users run
it); this process only sends requests (it never imports anno_mlx). Every answer is checked
against the baseline's entities, so a lost or wrong answer counts as an error.

    python benchmarks/serve_load.py [--backend mlx] [--requests 200] [--clients 1 4 16]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

EXAMPLES = Path(__file__).resolve().parents[1] / "ui" / "examples"
BASELINE = """
import json, sys, time
from anno_mlx import NER
texts = json.load(open(sys.argv[1]))
ner = NER.from_pretrained(None, backend=sys.argv[2])
ner(texts[0])  # warm-up, as the server is warm
started = time.perf_counter()
found = [[e.to_dict() for e in ner(t)] for t in texts]
print(json.dumps({"seconds": time.perf_counter() - started, "entities": found}))
"""


def documents(n: int) -> list[str]:
    """Paragraphs of the UI's example documents (news, contract, dossier), repeated to `n`."""
    paragraphs = [
        p.strip()
        for f in sorted(EXAMPLES.glob("*.txt"))
        for p in f.read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]
    return [paragraphs[i % len(paragraphs)] for i in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    texts = documents(args.requests)
    words = sum(len(t.split()) for t in texts)

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
    baseline = json.loads(
        subprocess.run(
            [sys.executable, "-c", BASELINE, f.name, args.backend], capture_output=True, text=True, check=True
        ).stdout
    )
    base_rate = len(texts) / baseline["seconds"]
    print(f"{len(texts)} documents, {words:,} words; backend {args.backend}")
    print(
        f"library, one call per document (own process): {base_rate:,.1f} docs/s ({words / baseline['seconds']:,.0f} words/s)"
    )

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "anno_mlx",
            "serve",
            "--port",
            str(port),
            "--backend",
            args.backend,
            "--queue",
            "64",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64)) as client:
            client.post(url + "/v1/ner", json={"text": texts[0]})  # warm-up
            print(
                f"\n{'clients':>7}  {'docs/s':>8}  {'vs library':>10}  {'p50 ms':>7}  {'p95 ms':>7}  errors"
            )
            for clients in args.clients:
                latencies: list[float] = []

                def ask(i: int) -> bool:
                    started = time.perf_counter()
                    answer = client.post(url + "/v1/ner", json={"text": texts[i]})
                    latencies.append(time.perf_counter() - started)
                    return answer.status_code == 200 and answer.json() == baseline["entities"][i]

                started = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    ok = list(pool.map(ask, range(len(texts))))
                rate = len(texts) / (time.perf_counter() - started)
                p50 = statistics.median(latencies) * 1000
                p95 = sorted(latencies)[int(0.95 * len(latencies))] * 1000
                print(
                    f"{clients:>7}  {rate:>8.1f}  {rate / base_rate:>9.2f}x  {p50:>7.0f}  {p95:>7.0f}  {ok.count(False)}"
                )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
