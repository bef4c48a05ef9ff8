"""GLiNER zero-shot NER: our MLX path, our PyTorch path and the `gliner` package, each timed in a
fresh process of its own, on the same checkpoint, texts and labels.

The checkpoint is built offline by the package itself (`anno_mlx.testing.tiny_gliner`, in its
environment `.venv-gliner/`) with random weights: a uni-encoder on a DeBERTa-v3-base-shaped
backbone with the BiLSTM, max_width 12, max_len 384 (`--quick`: the tiny uni-deberta test model).
Workloads, with the labels person, organization, location and date at threshold 0.5:

- (a) 64 news-like texts of about 30 words in one batch call (`ner.batch` / `inference`);
- (b) one document of ~350 words, which fits one window;
- (c) a document of 20 x max_len words: ours in one call (overlapping windows of words); the
  package in one call, which truncates it to max_len words, and over the text cut by hand into
  max_len-word pieces (its batch call over those pieces), the fair baseline.

Each measurement is a process of its own: it loads its implementation, makes a warm-up call (the
workload's first batch of 8 texts, or first max_len words) and one timed call, and prints a JSON
line; rounds are interleaved, the order rotating. The package runs in `.venv-gliner`'s Python and
never imports anno_mlx (the worker reports it, and the benchmark stops if it did). Printed:
words/s (GLiNER's words: runs of word characters and single punctuation marks) of the median
round, each as a ratio to the package (for (c), to the package over max_len-word pieces).

    python benchmarks/gliner.py [--work DIR] [--quick] [--rounds N] [--only a b c] [--busy N]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "ui" / "examples"
NEWS = ("01-short-news.txt", "02-contract.txt", "04-long-dossier.txt")  # English prose
DOSSIER = "04-long-dossier.txt"
LABELS = ["person", "organization", "location", "date"]
THRESHOLD = 0.5
BATCH_SIZE = 8  # both sides' default
# command-line name -> the name in the tables
IMPLEMENTATIONS = {"mlx": "anno-mlx (MLX)", "torch": "anno-mlx (PyTorch)", "gliner": "gliner package"}


@dataclass
class Row:
    """One line of a workload's table: an implementation run on one list of texts."""

    name: str
    implementation: str  # a key of IMPLEMENTATIONS
    texts: str  # a key of the inputs file's "texts"
    words: int  # the words it reads
    baseline: bool = False  # the row the others are divided by


@dataclass
class Workload:
    key: str
    name: str
    rows: list[Row]


def timing_worker() -> Any:
    """`anno_mlx/bench/timing_worker.py` loaded by its path, so that the package's process
    measures with the same code and still never imports anno_mlx."""
    spec = importlib.util.spec_from_file_location(
        "timing_worker", ROOT / "anno_mlx" / "bench" / "timing_worker.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- The workers ---------------------------------------------------------------------------------


def time_one(args: argparse.Namespace) -> None:
    """Load one implementation, warm it up on the workload's first texts, time one call on all
    of them, and print seconds, peak memory and what it found as a JSON line."""
    inputs = json.loads(Path(args.inputs).read_text(encoding="utf-8"))
    texts, warm_up = inputs["texts"][args.texts], inputs["warm_up"][args.texts]
    extra: dict[str, Any] = {}
    if args.time_of == "gliner":
        import warnings

        import torch
        from gliner import GLiNER

        warnings.filterwarnings("ignore")  # the truncation warning of (c)'s one call
        model = GLiNER.from_pretrained(args.folder, local_files_only=True).eval()

        def run(batch: list[str]) -> list[list[dict]]:
            return model.inference(batch, LABELS, threshold=THRESHOLD, batch_size=BATCH_SIZE)

        extra.update(
            threads=torch.get_num_threads(),
            anno_mlx_imported=sorted(m for m in sys.modules if m.split(".")[0] in ("anno_mlx", "mlx")),
        )
    else:
        from anno_mlx import NER

        ner = NER.from_pretrained(args.folder, backend=args.time_of)

        def run(batch: list[str]) -> list[list[Any]]:
            return ner.batch(batch, labels=LABELS, threshold=THRESHOLD, batch_size=BATCH_SIZE)

        windows = sum(len(p.windows) for p in ner.prepare(texts, ner.options(labels=LABELS)))
        extra.update(runs_on=ner.runs_on, **(dict(windows=windows) if windows > len(texts) else {}))
    run(warm_up)
    found: list = []
    seconds, peak = timing_worker().measure(lambda: found.extend(run(texts)))
    print(json.dumps(dict(seconds=seconds, peak_mb=peak, entities=sum(map(len, found)), **extra)), flush=True)


def worker(folder: Path, inputs: Path, implementation: str, texts: str) -> dict:
    """One measurement in a fresh process: ours in this Python, the package in its own."""
    common = ["--time-of", implementation, "--texts", texts, "--folder", str(folder), "--inputs", str(inputs)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if implementation == "gliner":
        from anno_mlx.testing.tiny_gliner import reference_python

        # -P: this file's folder stays off sys.path, or this file would be imported as `gliner`
        command = [str(reference_python()), "-P", str(Path(__file__).resolve()), *common]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), *common]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the {IMPLEMENTATIONS[implementation]} worker failed on {texts}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("anno_mlx_imported"):
        raise SystemExit(
            f"the gliner package's worker imported {', '.join(result['anno_mlx_imported'])}; "
            "its timing would not be independent"
        )
    return result


# --- The benchmark -------------------------------------------------------------------------------


def build_model(work: Path, quick: bool) -> Path:
    """The checkpoint, built with the package once per `work` folder."""
    from anno_mlx.testing.tiny_gliner import build

    folder = work / ("gliner-tiny" if quick else "gliner-base")
    if (folder / "gliner_config.json").exists():
        return folder
    corpus = work / "tokenizer-text.txt"
    corpus.write_text(
        "\n".join((EXAMPLES / name).read_text(encoding="utf-8") for name in NEWS), encoding="utf-8"
    )
    print(f"building the model in {folder} with the gliner package ...", flush=True)
    return build("uni-deberta", folder, base_text=None if quick else corpus)


def words_of(text: str) -> Any:
    """[n, 2] character offsets of GLiNER's words in `text`: what max_len counts and words/s
    divides (imported here: the package's worker runs this file and must not import anno_mlx)."""
    from anno_mlx.zeroshot import split_words

    return split_words(text)


def word_count(text: str) -> int:
    return len(words_of(text))


def first_words(text: str, n: int) -> str:
    words = words_of(text)
    return text[words[0, 0] : words[n - 1, 1]]


def sentences(text: str, low: int, high: int) -> list[str]:
    """Runs of consecutive sentences of `text` of `low` to `high` words (longer ones, and
    headings run into them, are skipped)."""
    out, run = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split())):
        run = f"{run} {sentence}".strip()
        if word_count(run) >= low:
            if word_count(run) <= high:
                out.append(run)
            run = ""
    return out


def prepare(folder: Path, path: Path, quick: bool) -> list[Workload]:
    """The workloads' texts, written to `path` for the workers, and their table rows."""
    max_len = json.loads((folder / "gliner_config.json").read_text(encoding="utf-8"))["max_len"]
    short = [s for name in NEWS for s in sentences((EXAMPLES / name).read_text(encoding="utf-8"), 25, 40)]
    n_short = 16 if quick else 64
    short = (short * (n_short // len(short) + 1))[:n_short]
    source = (EXAMPLES / DOSSIER).read_text(encoding="utf-8")
    document = source
    while word_count(document) < 20 * max_len:
        document += "\n\n" + source
    one_window = first_words(source, int(0.9 * max_len))
    long_doc = first_words(document, 20 * max_len)
    words = words_of(long_doc)
    pieces = [
        long_doc[words[i, 0] : words[min(i + max_len, len(words)) - 1, 1]]
        for i in range(0, len(words), max_len)
    ]
    texts = {"a": short, "b": [one_window], "c": [long_doc], "c-pieces": pieces}
    warm_up = {"a": short[:BATCH_SIZE], "b": [one_window], "c": pieces[:1], "c-pieces": pieces[:1]}
    path.write_text(json.dumps(dict(texts=texts, warm_up=warm_up), ensure_ascii=False), encoding="utf-8")

    def ours_and_package(key: str, words: int) -> list[Row]:
        return [Row(IMPLEMENTATIONS[n], n, key, words, n == "gliner") for n in IMPLEMENTATIONS]

    lengths = [word_count(text) for text in short]
    b_words, c_words = word_count(one_window), len(words)
    return [
        Workload(
            "a",
            f"a: {len(short)} texts of {min(lengths)}-{max(lengths)} words",
            ours_and_package("a", sum(lengths)),
        ),
        Workload("b", f"b: one {b_words}-word document", ours_and_package("b", b_words)),
        Workload(
            "c",
            f"c: one {c_words:,}-word document",
            [
                Row(IMPLEMENTATIONS["mlx"], "mlx", "c", c_words),
                Row(IMPLEMENTATIONS["torch"], "torch", "c", c_words),
                Row(f"gliner package, one call (reads {max_len})", "gliner", "c", max_len),
                Row(
                    f"gliner package, {len(pieces)} pieces of {max_len}", "gliner", "c-pieces", c_words, True
                ),
            ],
        ),
    ]


def describe(folder: Path, inputs: Path, quick: bool) -> str:
    """The model's shape, and how many tokens per word its tokenizer makes of the long document."""
    from anno_mlx.tokenizer import Tokenizer

    config = json.loads((folder / "gliner_config.json").read_text(encoding="utf-8"))
    encoder = config["encoder_config"]
    (text,) = json.loads(inputs.read_text(encoding="utf-8"))["texts"]["c"]
    words = [text[a:b] for a, b in words_of(text)]
    tokens = sum(map(len, Tokenizer.from_folder(folder, pad_token_id=0).encode_words(words)))
    which = " (--quick: the tiny test model)" if quick else ""
    return (
        f"model: GLiNER uni-encoder on {encoder['model_type']}, {encoder['num_hidden_layers']} layers of "
        f"{encoder['hidden_size']}, {encoder['num_attention_heads']} heads, intermediate "
        f"{encoder['intermediate_size']}, BiLSTM, hidden {config['hidden_size']}, max_width "
        f"{config['max_width']}, max_len {config['max_len']}{which}; random weights, float32; "
        f"{tokens / len(words):.2f} tokens per word"
    )


def compare(
    folder: Path, inputs: Path, workloads: list[Workload], rounds: int
) -> dict[str, dict[str, float]]:
    """Time every row, a fresh process per run, interleaved with the order rotating each round;
    print the table and return workload key -> row name -> median words/s."""
    columns = f"{'words/s':>9} {'vs gliner':>10} {'peak MB':>8} {'entities':>9}"
    print(f"{'workload':<36} {'implementation':<40} {columns}")
    rates: dict[str, dict[str, float]] = {}
    notes = set()
    for workload in workloads:
        times: dict[str, list[float]] = {row.name: [] for row in workload.rows}
        results: dict[str, dict] = {}
        for r in range(rounds):
            order = workload.rows[r % len(workload.rows) :] + workload.rows[: r % len(workload.rows)]
            for row in order:
                result = worker(folder, inputs, row.implementation, row.texts)
                times[row.name].append(result["seconds"])
                results[row.name] = result
        rates[workload.key] = {
            row.name: row.words / statistics.median(times[row.name]) for row in workload.rows
        }
        (base,) = [rates[workload.key][row.name] for row in workload.rows if row.baseline]
        for row in workload.rows:
            result, rate = results[row.name], rates[workload.key][row.name]
            windows = f", {result['windows']} windows" if "windows" in result else ""
            print(
                f"{workload.name:<36} {row.name + windows:<40} {rate:>9.0f} {rate / base:>9.2f}x "
                f"{result['peak_mb']:>8.0f} {result['entities']:>9}",
                flush=True,
            )
            notes.add(result.get("runs_on") or f"the gliner package: PyTorch, {result['threads']} threads")
    print("; ".join(sorted(notes)))
    return rates


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "--work", type=Path, help="folder that keeps the built model between runs (default: a temporary one)"
    )
    parser.add_argument("--quick", action="store_true", help="the tiny test model, 16 short texts, one round")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload (default 2, quick 1)")
    parser.add_argument("--only", nargs="+", choices=["a", "b", "c"], help="run only these workloads")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="run it twice, quiet and beside N CPU-burning processes",
    )
    parser.add_argument("--time-of", choices=list(IMPLEMENTATIONS), help=argparse.SUPPRESS)  # a worker
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.time_of:
        return time_one(args)
    if args.busy < 0:
        parser.error("--busy takes a number of processes, 0 or more")
    rounds = args.rounds or (1 if args.quick else 2)
    with tempfile.TemporaryDirectory(prefix="anno-bench-gliner-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        folder = build_model(work, args.quick)
        inputs = work / f"inputs-{folder.name}.json"
        workloads = [w for w in prepare(folder, inputs, args.quick) if not args.only or w.key in args.only]
        print(describe(folder, inputs, args.quick))
        print(
            f"labels {', '.join(LABELS)}; threshold {THRESHOLD}; batch size {BATCH_SIZE}; "
            f"rounds: {rounds}, interleaved; median reported"
        )
        print(
            "each implementation ran in its own process, a fresh one per workload and round (a warm-up call, "
            "then the timed one); the gliner package's process never imported anno_mlx"
        )
        if not args.busy:
            compare(folder, inputs, workloads, rounds)
            return
        from anno_mlx.bench.throughput import cpu_burners

        print("\nquiet:")
        quiet = compare(folder, inputs, workloads, rounds)
        alongside = f"{args.busy} CPU-burning process{'es' if args.busy > 1 else ''} alongside"
        print(f"\nbusy, {alongside}:")
        with cpu_burners(args.busy):
            busy = compare(folder, inputs, workloads, rounds)
        print(f"\nbusy / quiet words/s ({alongside}, {os.cpu_count()} CPUs)")
        for workload in workloads:
            for row in workload.rows:
                ratio = busy[workload.key][row.name] / quiet[workload.key][row.name]
                print(f"{workload.name:<36} {row.name:<40} {ratio:>9.2f}x")


if __name__ == "__main__":
    main()
