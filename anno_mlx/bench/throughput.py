"""Throughput of our MLX path, our PyTorch path and transformers' ModernBERT, each in its own process.

A ModernBERT-base-shaped token classifier with random weights is built locally (no download);
the three implementations run the same inputs at the same dtype: (a) 64 documents of 32-512
tokens in length-sorted batches, (b) one 2,048-token document, (c) one 8,192-token document,
(d) a 50,000-token document through the whole NER pipeline (transformers runs the same windows).
Every measurement runs in a fresh process (`timing_worker.py`; transformers' never imports
anno_mlx), interleaved round by round with the order rotating. Printed: tokens/s (median round),
peak memory a run adds in its process, each of ours as a ratio to transformers, and the model
FLOPs per token with the rate they imply. `--busy N` repeats the comparison beside N CPU-burning
processes. `python -m anno_mlx bench [--quick] [--device cuda] [--busy 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from .timing_worker import read_workload, report, worker_arguments, write_workloads

BASE = dict(
    hidden_size=768,
    intermediate_size=1152,
    num_hidden_layers=22,
    num_attention_heads=12,
    local_attention=128,
    vocab_size=50368,
)
# command-line name -> the name in the tables
IMPLEMENTATIONS = {
    "mlx": "anno-mlx (MLX)",
    "torch": "anno-mlx (PyTorch)",
    "transformers": "transformers (sdpa)",
}
MLX, TORCH, HF = IMPLEMENTATIONS.values()
WORKER = Path(__file__).with_name("timing_worker.py")
# A process that keeps one core busy and ends by itself once the benchmark's process is gone.
BURNER = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**7):\n        pass\n"


@dataclass
class Workload:
    key: str  # a, b, c or d
    name: str
    tokens: int  # real tokens processed per round
    context: list[int]  # sequence lengths, for the FLOP estimate
    warm_up: bool = True  # a run before the measured one (not for (d): its first window warms up)


def flops_per_token(args, length: int) -> float:
    """Matrix-multiply FLOPs per token of a forward pass (2 per multiply-add): the linear layers
    (embeddings excluded, classifier included) plus attention scores and values over the keys
    each layer sees (all `length` on global layers, at most local_attention + 1 on local ones)."""
    H, inter = args.hidden_size, args.intermediate_size
    linear = (
        args.num_hidden_layers * (3 * H * H + H * H + 2 * H * inter + inter * H) + H * H + H * args.num_labels
    )
    keys = [
        length if kind == "full_attention" else min(length, args.local_attention + 1)
        for kind in args.layer_types
    ]
    return 2 * linear + sum(4 * H * k for k in keys)


def build(work: Path, quick: bool, seed: int = 0) -> Path:
    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint

    config = dict(BASE, num_hidden_layers=4, vocab_size=512) if quick else dict(BASE)
    return make_tiny_checkpoint(work / "hf", seed=seed, **config)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m anno_mlx bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4 layers, small vocabulary and inputs, one round: about a minute",
    )
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda", "mps"], help="device for the PyTorch runs"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="interleaved rounds per workload (default 3, quick 1)"
    )
    parser.add_argument("--only", nargs="+", choices=["a", "b", "c", "d"], help="run only these workloads")
    parser.add_argument("--no-mlx", action="store_true", help="skip the MLX path (e.g. on a CUDA machine)")
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="run the comparison twice, quiet and beside N CPU-burning processes, and print busy/quiet",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="instead of timing: each implementation's peak memory per workload on a first run, in a fresh process (Linux)",
    )
    parser.add_argument("--time-of", choices=list(IMPLEMENTATIONS)[:2], help=argparse.SUPPRESS)  # worker
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # a model folder already built
    worker_arguments(parser)
    args = parser.parse_args(argv)
    if args.busy < 0:
        parser.error("--busy takes a number of processes, 0 or more")
    if args.time_of:
        return time_ours(args)
    rounds = args.rounds or (1 if args.quick else 3)
    if args.memory and args.device != "cuda" and not Path("/proc/self/clear_refs").exists():
        raise SystemExit("--memory needs Linux's /proc (or --device cuda)")

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    names = [n for n in IMPLEMENTATIONS if not (args.no_mlx and n == "mlx")]
    with tempfile.TemporaryDirectory(prefix="anno-bench-") as work:
        folder = Path(args.folder) if args.folder else build(Path(work), args.quick)
        inputs = Path(work) / "inputs.npz"
        model_args, workloads = prepare(args, folder, inputs)
        worker = WorkerCommand(folder, inputs, args.device)
        if args.memory:
            return memory_table(worker, workloads, names)
        dtype = "bfloat16" if args.device == "cuda" else "float32"
        print(
            f"model: ModernBERT-base shape{' (4 layers: --quick)' if args.quick else ''}, random weights, {dtype}; "
            f"PyTorch on {args.device}, {torch.get_num_threads()} threads; rounds: {rounds}, interleaved; median reported"
        )
        print(
            "each implementation ran in its own process: a fresh one per workload and round "
            "(a warm-up run, then the timed one); transformers' process never imported anno_mlx"
        )
        if args.device == "cuda":
            print(
                f"GPU: {torch.cuda.get_device_name()}; peak MB = PyTorch's peak GPU allocation above the model's weights"
            )
        else:
            print("peak MB = resident memory the timed run added in its process")
        if not args.busy:
            compare(worker, workloads, names, rounds, model_args)
            return
        print("\nquiet:")
        quiet = compare(worker, workloads, names, rounds, model_args)
        alongside = f"{args.busy} CPU-burning process{'es' if args.busy > 1 else ''} alongside"
        print(f"\nbusy, {alongside}:")
        with cpu_burners(args.busy):
            busy = compare(worker, workloads, names, rounds, model_args)
        print(f"\nbusy / quiet tokens/s ({alongside}, {os.cpu_count()} CPUs)")
        print(f"{'workload':<52} " + " ".join(f"{IMPLEMENTATIONS[n]:>20}" for n in names))
        for workload in workloads:
            row = [quiet[workload.key][n] / busy[workload.key][n] for n in names]  # seconds: quiet/busy
            print(f"{workload.name:<52} " + " ".join(f"{r:>19.2f}x" for r in row))


@contextmanager
def cpu_burners(n: int) -> Iterator[list[subprocess.Popen]]:
    """`n` processes that each keep a core busy for as long as the block runs; killed however it
    ends, Ctrl-C included (and each ends by itself if this process dies without cleaning up)."""
    burners: list[subprocess.Popen] = []
    try:
        for _ in range(n):
            burners.append(
                subprocess.Popen(
                    [sys.executable, "-c", BURNER], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        yield burners
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait()


@dataclass
class WorkerCommand:
    """Starts one measurement in a fresh process and returns its JSON result."""

    folder: Path
    inputs: Path
    device: str

    def __call__(self, name: str, key: str, cold: bool = False) -> dict:
        common = ["--only", key, "--folder", str(self.folder), "--inputs", str(self.inputs)]
        common += ["--device", self.device] + (["--cold"] if cold else [])
        if name == "transformers":  # by its path: its process must not import anno_mlx
            command = [sys.executable, str(WORKER), *common]
        else:
            command = [sys.executable, "-m", "anno_mlx.bench.throughput", "--time-of", name, *common]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"the {IMPLEMENTATIONS[name]} worker failed on workload ({key})")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result.get("anno_mlx_imported"):
            raise SystemExit("transformers' worker imported anno_mlx; its timing would not be independent")
        return result


def compare(worker: WorkerCommand, workloads: list[Workload], names: list[str], rounds: int, model_args):
    """Time every implementation on every workload, a fresh process per run, interleaved with the
    order rotating each round; print the table and return workload key -> name -> median seconds."""
    print(
        f"{'workload':<52} {'implementation':<20} {'tokens/s':>10} {'vs transformers':>16} {'peak MB':>9} {'GFLOP/s':>9}"
    )
    medians: dict[str, dict[str, float]] = {}
    blas = None
    for workload in workloads:
        times: dict[str, list[float]] = {n: [] for n in names}
        peaks: dict[str, float] = {n: 0.0 for n in names}
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
                result = worker(name, workload.key)
                blas = result.get("blas", blas)
                times[name].append(result["seconds"])
                peaks[name] = max(peaks[name], result["peak_mb"])
        flops = sum(flops_per_token(model_args, n) * n for n in workload.context) / sum(workload.context)
        medians[workload.key] = {n: statistics.median(times[n]) for n in names}
        base = medians[workload.key]["transformers"]
        for name in names:
            t = medians[workload.key][name]
            rate = workload.tokens / t
            print(
                f"{workload.name:<52} {IMPLEMENTATIONS[name]:<20} {rate:>10.0f} {base / t:>15.2f}x {peaks[name]:>9.0f} {rate * flops / 1e9:>9.1f}",
                flush=True,
            )
        print(f"{'':<52} model FLOPs per token: {flops / 1e9:.2f} GFLOP", flush=True)
    if blas:
        print(f"MLX's processes used {blas}")
    return medians


def prepare(args, folder: Path, path: Path):
    """(model args, workloads): the inputs of every workload, written to `path` for the workers.
    They depend only on the seed, so `--only` picks from the same inputs."""
    from anno_mlx.models.modernbert import ModelArgs
    from anno_mlx.tokenizer import Tokenizer, pad_rows
    from anno_mlx.windows import default_stride, plan_windows

    model_args = ModelArgs.from_dict(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    tokenizer = Tokenizer.from_folder(folder, model_args.pad_token_id)
    rng = np.random.default_rng(0)
    vocab = tokenizer.vocab_size

    def sorted_batches(lengths, batch=8):
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        out = []
        for start in range(0, len(order), batch):
            rows = [rng.integers(5, vocab, lengths[i]) for i in order[start : start + batch]]
            ids, mask = pad_rows(rows, tokenizer.pad_token_id)
            out.append((ids, None if mask.all() else mask))
        return out

    n_docs, low, high = (16, 32, 256) if args.quick else (64, 32, 512)
    doc_lengths = rng.integers(low, high + 1, n_docs).tolist()
    calls = {"a": sorted_batches(doc_lengths)}
    workloads = [Workload("a", f"a: {n_docs} docs of {low}-{high} tokens", sum(doc_lengths), doc_lengths)]
    for key, length in (("b", 512 if args.quick else 2048), ("c", 1024 if args.quick else 8192)):
        calls[key] = [(rng.integers(5, vocab, (1, length)), None)]
        workloads.append(Workload(key, f"{key}: one {length:,}-token document", length, [length]))
    # (d): the whole pipeline on text; transformers runs the same windows through its model.
    target, window = (4_000, 1024) if args.quick else (50_000, model_args.max_position_embeddings)
    sample = (resources.files("anno_mlx.ui") / "examples" / "04-long-dossier.txt").read_text(encoding="utf-8")
    text = sample
    while len(tokenizer.tokenize(text)) < target:
        text += "\n\n" + sample
    text = text[: int(tokenizer.tokenize(text).offsets[target - 1, 1])]  # exactly `target` tokens
    tokens = tokenizer.tokenize(text)
    prefix, suffix = tokenizer.special_tokens()
    capacity = window - len(prefix) - len(suffix)
    windows = plan_windows(len(tokens), capacity, default_stride(capacity))  # as the pipeline plans them
    calls["d"] = [(np.concatenate([prefix, tokens.ids[a:b], suffix])[None], None) for a, b in windows]
    workloads.append(
        Workload(
            "d",
            f"d: {len(tokens):,}-token document, NER pipeline ({len(windows)} windows)",
            len(tokens),
            [b - a for a, b in windows],
            warm_up=args.quick,
        )
    )
    if args.only:
        workloads = [w for w in workloads if w.key in args.only]
    described = [dict(vars(w), window=window if w.key == "d" else None) for w in workloads]
    write_workloads(path, described, {w.key: calls[w.key] for w in workloads}, text)
    return model_args, workloads


def time_ours(args) -> None:
    """The worker for one of ours: load the model on its backend, run one workload (the NER
    pipeline on the text for (d)), print the result as a JSON line."""
    from anno_mlx import NER
    from anno_mlx.loading import load_runner

    (key,) = args.only
    if args.time_of == "mlx":
        runner, tokenizer = load_runner(args.folder, backend="mlx")
    else:
        dtype = "bfloat16" if args.device == "cuda" else "float32"
        runner, tokenizer = load_runner(args.folder, backend="torch", device=args.device, dtype=dtype)
    workload, calls, text = read_workload(args.inputs, key)
    if key == "d":
        ner = NER(runner, tokenizer, runner.args.id2label, max_length=workload["window"])
        run = lambda: ner(text)  # noqa: E731
    else:
        run = lambda: [runner(ids, mask, softmax=True) for ids, mask in calls]  # noqa: E731
    blas = {}
    if args.time_of == "mlx":
        from anno_mlx._blas import blas_description

        blas = dict(blas=blas_description())
    report(
        run,
        warm_up=workload["warm_up"] and not args.cold,
        cuda=args.device == "cuda" and args.time_of == "torch",
        **blas,
    )


def memory_table(worker: WorkerCommand, workloads: list[Workload], names: list[str]) -> None:
    """Each implementation and workload in a fresh process, one run with no warm-up, so that no
    run's freed or cached memory hides another's: what a first call costs on top of the loaded
    model."""
    peaks = {w.key: {n: worker(n, w.key, cold=True)["peak_mb"] for n in names} for w in workloads}
    unit = (
        "PyTorch's peak GPU allocation (MLX: resident memory)"
        if worker.device == "cuda"
        else "peak resident memory"
    )
    print(
        f"peak MB added by one run, each implementation and workload in a fresh process ({unit} above the loaded model)"
    )
    print(f"{'workload':<52} " + " ".join(f"{IMPLEMENTATIONS[n]:>20}" for n in names))
    for workload in workloads:
        print(f"{workload.name:<52} " + " ".join(f"{peaks[workload.key][n]:>20.0f}" for n in names))


if __name__ == "__main__":
    main()
