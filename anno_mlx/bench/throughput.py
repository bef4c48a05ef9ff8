"""Throughput of our MLX path, our PyTorch path and transformers' ModernBERT, in one run.

A ModernBERT-base-shaped token classifier with random weights is built locally (no download);
the three implementations run the same inputs, interleaved round by round, at the same dtype:
(a) 64 documents of 32-512 tokens in length-sorted batches, (b) one 2,048-token document,
(c) one 8,192-token document, (d) a 50,000-token document through the whole NER pipeline
(transformers runs the same windows). Printed: tokens/s (median round), peak resident memory
added during the run, each of ours as a ratio to transformers, and the model FLOPs per token
with the rate they imply. `python -m anno_mlx bench [--quick] [--device cuda]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

import numpy as np

BASE = dict(
    hidden_size=768,
    intermediate_size=1152,
    num_hidden_layers=22,
    num_attention_heads=12,
    local_attention=128,
    vocab_size=50368,
)


@dataclass
class Workload:
    name: str
    tokens: int  # real tokens processed per round
    runs: dict  # implementation -> callable doing one round
    context: list[int]  # sequence lengths, for the FLOP estimate
    warm_up: bool = True  # a round before the measured ones (not for (d): its first window warms up)


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the process-wide peak is the best we have
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
            2**20 if os.uname().sysname == "Darwin" else 2**10
        )


def peak_during(fn: Callable[[], None], cuda: bool = False) -> tuple[float, float]:
    """(seconds, peak MB added) of one call: resident memory sampled every 5 ms, or on CUDA the
    peak of PyTorch's allocator above what was allocated before (exact, per implementation)."""
    if cuda:
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - started, (torch.cuda.max_memory_allocated() - before) / 2**20
    start_rss, peak, done = rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb() - start_rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    done.set()
    thread.join()
    return seconds, max(peak[0], rss_mb() - start_rss)


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


MLX, TORCH, HF = "anno-mlx (MLX)", "anno-mlx (PyTorch)", "transformers (sdpa)"


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
        "--memory",
        action="store_true",
        help="instead of timing: each implementation's peak memory per workload, each in a process of its own (Linux)",
    )
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # the worker behind --memory
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # a model folder already built
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    folder = (
        Path(args.folder) if args.folder else build(Path(tempfile.mkdtemp(prefix="anno-bench-")), args.quick)
    )
    names = [n for n in (MLX, TORCH, HF) if not (args.no_mlx and n == MLX)]
    if args.memory:
        return memory_table(args, folder, names)
    if args.memory_of:
        names = [args.memory_of]
    model_args, workloads = prepare(args, folder, dtype, names)

    if args.memory_of:  # one implementation in this process: its peak per workload, as JSON
        print(
            json.dumps(
                {
                    w.name: own_peak_mb(
                        w.runs[args.memory_of], args.device == "cuda" and args.memory_of != MLX
                    )
                    for w in workloads
                }
            )
        )
        return
    print(
        f"model: ModernBERT-base shape{' (4 layers: --quick)' if args.quick else ''}, random weights, {dtype}; "
        f"PyTorch on {args.device}, {torch.get_num_threads()} threads; rounds: {rounds}, interleaved; median reported"
    )
    if args.device == "cuda":
        print(
            f"GPU: {torch.cuda.get_device_name()}; peak MB = PyTorch's peak GPU allocation above the model's weights"
        )
    else:
        print(
            "peak MB = resident memory added during a run, all implementations in this one process "
            "(--memory measures each in its own)"
        )
    print(
        f"{'workload':<52} {'implementation':<20} {'tokens/s':>10} {'vs transformers':>16} {'peak MB':>9} {'GFLOP/s':>9}"
    )
    for workload in workloads:
        for fn in workload.runs.values() if workload.warm_up else ():  # warm-up, outside the measurement
            fn()
        times: dict[str, list[float]] = {k: [] for k in workload.runs}
        peaks: dict[str, float] = {k: 0.0 for k in workload.runs}
        order = list(workload.runs)
        for r in range(rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:  # rotate the order each round
                seconds, peak = peak_during(workload.runs[name], cuda=args.device == "cuda" and name != MLX)
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
        flops = sum(flops_per_token(model_args, n) * n for n in workload.context) / sum(workload.context)
        base = statistics.median(times[HF])
        for name in order:
            t = statistics.median(times[name])
            rate = workload.tokens / t
            print(
                f"{workload.name:<52} {name:<20} {rate:>10.0f} {base / t:>15.2f}x {peaks[name]:>9.0f} {rate * flops / 1e9:>9.1f}"
            )
        print(f"{'':<52} model FLOPs per token: {flops / 1e9:.2f} GFLOP")


def prepare(args, folder: Path, dtype: str, names: list[str]):
    """(model args, workloads) with a run for each implementation in `names`; the inputs depend
    only on the seed, so every process builds the same ones."""
    import torch
    import transformers

    from anno_mlx import NER
    from anno_mlx.checkpoint import read_config
    from anno_mlx.loading import load_runner
    from anno_mlx.models.modernbert import ModelArgs
    from anno_mlx.tokenizer import Tokenizer, pad_rows
    from anno_mlx.windows import default_stride, plan_windows

    model_args = ModelArgs.from_dict(read_config(folder))
    tokenizer = Tokenizer.from_folder(folder, model_args.pad_token_id)
    impls: dict[str, object] = {}
    if MLX in names:
        impls[MLX] = load_runner(folder, backend="mlx")[0]
    if TORCH in names:
        impls[TORCH] = load_runner(folder, backend="torch", device=args.device, dtype=dtype)[0]
    forwards = {
        name: (lambda ids, mask, r=runner: r(ids, mask, softmax=True)) for name, runner in impls.items()
    }
    if HF in names:
        reference = (
            transformers.ModernBertForTokenClassification.from_pretrained(
                str(folder), attn_implementation="sdpa", dtype=getattr(torch, dtype)
            )
            .to(args.device)
            .eval()
        )

        def hf_run(ids: np.ndarray, mask: Optional[np.ndarray]):
            with torch.inference_mode():
                out = reference(
                    input_ids=torch.from_numpy(ids.astype(np.int64)).to(args.device),
                    attention_mask=None
                    if mask is None
                    else torch.from_numpy(mask.astype(np.int64)).to(args.device),
                ).logits
                return torch.softmax(out.float(), -1).cpu().numpy()

        forwards[HF] = hf_run
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

    workloads = []
    n_docs, low, high = (16, 32, 256) if args.quick else (64, 32, 512)
    doc_lengths = rng.integers(low, high + 1, n_docs).tolist()
    mixed = sorted_batches(doc_lengths)
    workloads.append(
        Workload(
            f"a: {n_docs} docs of {low}-{high} tokens",
            sum(doc_lengths),
            {k: (lambda f=f: [f(i, m) for i, m in mixed]) for k, f in forwards.items()},
            doc_lengths,
        )
    )
    for key, length in (("b", 512 if args.quick else 2048), ("c", 1024 if args.quick else 8192)):
        ids = rng.integers(5, vocab, (1, length))
        workloads.append(
            Workload(
                f"{key}: one {length:,}-token document",
                length,
                {k: (lambda f=f, ids=ids: f(ids, None)) for k, f in forwards.items()},
                [length],
            )
        )
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
    rows = [np.concatenate([prefix, tokens.ids[a:b], suffix])[None] for a, b in windows]
    d_runs = {
        name: (lambda n=NER(model, tokenizer, model_args.id2label, max_length=window): n(text))
        for name, model in impls.items()
    }
    if HF in forwards:
        d_runs[HF] = lambda: [forwards[HF](r, None) for r in rows]
    workloads.append(
        Workload(
            f"d: {len(tokens):,}-token document, NER pipeline ({len(windows)} windows)",
            len(tokens),
            d_runs,
            [b - a for a, b in windows],
            warm_up=args.quick,
        )
    )
    if args.only:
        workloads = [w for w in workloads if w.name[0] in args.only]
    return model_args, workloads


def own_peak_mb(fn: Callable[[], None], cuda: bool) -> float:
    """Peak memory one call adds in this process: the kernel's resident high-water mark (reset
    first, Linux) above the resident size before the call, or PyTorch's peak GPU allocation."""
    if cuda:
        return peak_during(fn, cuda=True)[1]
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    before = rss_mb()
    fn()
    with open("/proc/self/status") as f:
        hwm_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return hwm_kb / 1024 - before


def memory_table(args, folder: Path, names: list[str]) -> None:
    """Each implementation and workload in a fresh process (same model folder, same inputs, one
    run), so that no run's freed or cached memory hides another's: what a first call costs on top
    of the loaded model."""
    if args.device != "cuda" and not Path("/proc/self/clear_refs").exists():
        raise SystemExit("--memory needs Linux's /proc (or --device cuda)")
    passed = ["--device", args.device] + (["--quick"] if args.quick else [])  # what shapes the inputs
    peaks: dict[str, dict[str, float]] = {}
    for key in args.only or ["a", "b", "c", "d"]:
        for name in names:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "anno_mlx.bench.throughput",
                    *passed,
                    "--only",
                    key,
                    "--folder",
                    str(folder),
                    "--memory-of",
                    name,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for workload, mb in json.loads(out.strip().splitlines()[-1]).items():
                peaks.setdefault(workload, {})[name] = mb
    unit = (
        "PyTorch's peak GPU allocation (MLX: resident memory)"
        if args.device == "cuda"
        else "peak resident memory"
    )
    print(
        f"peak MB added by one run, each implementation and workload in a fresh process ({unit} above the loaded model)"
    )
    print(f"{'workload':<52} " + " ".join(f"{n:>20}" for n in names))
    for workload, row in peaks.items():
        print(f"{workload:<52} " + " ".join(f"{row[n]:>20.0f}" for n in names))


if __name__ == "__main__":
    main()
