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
import os
from importlib import resources
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

BASE = dict(hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12, local_attention=128, vocab_size=50368)


@dataclass
class Workload:
    name: str
    tokens: int  # real tokens processed per round
    runs: dict  # implementation -> callable doing one round
    context: list[int]  # sequence lengths, for the FLOP estimate


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the process-wide peak is the best we have
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if os.uname().sysname == "Darwin" else 2**10)


def peak_during(fn: Callable[[], None]) -> tuple[float, float]:
    """(seconds, peak resident MB added) of one call, sampling RSS every 5 ms."""
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
    linear = args.num_hidden_layers * (3 * H * H + H * H + 2 * H * inter + inter * H) + H * H + H * args.num_labels
    keys = [length if kind == "full_attention" else min(length, args.local_attention + 1) for kind in args.layer_types]
    return 2 * linear + sum(4 * H * k for k in keys)


def build(work: Path, quick: bool, device: str, seed: int = 0):
    from .tiny_checkpoint import make_tiny_checkpoint

    config = dict(BASE, num_hidden_layers=4, vocab_size=512) if quick else dict(BASE)
    folder = make_tiny_checkpoint(work / "hf", seed=seed, **config)
    dtype = "bfloat16" if device == "cuda" else "float32"
    return folder, dtype


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m anno_mlx bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 layers, small vocabulary and inputs, one round: about a minute")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"], help="device for the PyTorch runs")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per workload (default 3, quick 1)")
    parser.add_argument("--only", nargs="+", choices=["a", "b", "c", "d"], help="run only these workloads")
    parser.add_argument("--no-mlx", action="store_true", help="skip the MLX path (e.g. on a CUDA machine)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)

    import torch
    import transformers

    from . import NER, load
    from .backends import run
    from .windows import plan_windows

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    work = Path(tempfile.mkdtemp(prefix="anno-bench-"))
    folder, dtype = build(work, args.quick, args.device)
    torch_dtype = getattr(torch, dtype)
    impls: dict[str, object] = {}
    if not args.no_mlx:
        impls["anno-mlx (MLX)"] = load(folder, backend="mlx")[0]
    impls["anno-mlx (PyTorch)"], tokenizer = load(folder, backend="torch", device=args.device, dtype=dtype)
    reference = transformers.ModernBertForTokenClassification.from_pretrained(
        str(folder), attn_implementation="sdpa", dtype=torch_dtype
    ).to(args.device).eval()
    model_args = impls["anno-mlx (PyTorch)"].args

    def hf_run(ids: np.ndarray, mask: Optional[np.ndarray]):
        with torch.inference_mode():
            out = reference(
                input_ids=torch.from_numpy(ids.astype(np.int64)).to(args.device),
                attention_mask=None if mask is None else torch.from_numpy(mask.astype(np.int64)).to(args.device),
            ).logits
            return torch.softmax(out.float(), -1).cpu().numpy()

    def ours(model):
        return lambda ids, mask: run(model, ids, mask, softmax=True)

    forwards = {name: ours(model) for name, model in impls.items()}
    forwards["transformers (sdpa)"] = hf_run
    rng = np.random.default_rng(0)
    vocab = tokenizer.vocab_size

    def sorted_batches(lengths, batch=8):
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        out = []
        for start in range(0, len(order), batch):
            chunk = [lengths[i] for i in order[start : start + batch]]
            ids = np.full((len(chunk), max(chunk)), tokenizer.pad_token_id, np.int64)
            mask = np.zeros_like(ids)
            for r, n in enumerate(chunk):
                ids[r, :n] = rng.integers(5, vocab, n)
                mask[r, :n] = 1
            out.append((ids, None if mask.all() else mask))
        return out

    workloads = []
    n_docs, low, high = (16, 32, 256) if args.quick else (64, 32, 512)
    doc_lengths = rng.integers(low, high + 1, n_docs).tolist()
    mixed = sorted_batches(doc_lengths)
    workloads.append(Workload(f"a: {n_docs} docs of {low}-{high} tokens", sum(doc_lengths),
                              {k: (lambda f=f: [f(i, m) for i, m in mixed]) for k, f in forwards.items()}, doc_lengths))
    for key, length in (("b", 512 if args.quick else 2048), ("c", 1024 if args.quick else 8192)):
        ids = rng.integers(5, vocab, (1, length))
        workloads.append(Workload(f"{key}: one {length:,}-token document", length,
                                  {k: (lambda f=f, ids=ids: f(ids, None)) for k, f in forwards.items()}, [length]))
    # (d): the whole pipeline on text; transformers runs the same windows.
    target, window = (4_000, 1024) if args.quick else (50_000, None)
    sample = (resources.files("anno_mlx.ui") / "examples" / "04-long-dossier.txt").read_text(encoding="utf-8")
    text = sample
    while len(tokenizer.tokenize(text)) < target:
        text += "\n\n" + sample
    text = text[: int(tokenizer.tokenize(text).offsets[target - 1, 1])]  # exactly `target` tokens
    pipeline_ner = {name: NER(model, tokenizer, model_args.id2label, max_length=window) for name, model in impls.items()}
    tokens = tokenizer.tokenize(text)
    some_ner = next(iter(pipeline_ner.values()))
    windows = plan_windows(len(tokens), some_ner.capacity, some_ner.stride)
    rows = [np.concatenate([some_ner.prefix, tokens.ids[a:b], some_ner.suffix])[None] for a, b in windows]
    d_runs = {name: (lambda n=n: n(text)) for name, n in pipeline_ner.items()}
    d_runs["transformers (sdpa)"] = lambda: [hf_run(r, None) for r in rows]
    workloads.append(Workload(f"d: {len(tokens):,}-token document, NER pipeline ({len(windows)} windows)", len(tokens), d_runs, [b - a for a, b in windows]))
    if args.only:
        workloads = [w for w in workloads if w.name[0] in args.only]

    print(f"model: ModernBERT-base shape{' (4 layers: --quick)' if args.quick else ''}, random weights, {dtype}; "
          f"PyTorch on {args.device}, {torch.get_num_threads()} threads; rounds: {rounds}, interleaved; median reported")
    print(f"{'workload':<52} {'implementation':<20} {'tokens/s':>10} {'vs transformers':>16} {'peak MB':>9} {'GFLOP/s':>9}")
    for workload in workloads:
        for fn in workload.runs.values():  # warm-up, outside the measurement
            fn()
        times: dict[str, list[float]] = {k: [] for k in workload.runs}
        peaks: dict[str, float] = {k: 0.0 for k in workload.runs}
        names = list(workload.runs)
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order each round
                seconds, peak = peak_during(workload.runs[name])
                times[name].append(seconds)
                peaks[name] = max(peaks[name], peak)
        flops = sum(flops_per_token(model_args, n) * n for n in workload.context) / sum(workload.context)
        base = statistics.median(times["transformers (sdpa)"])
        for name in names:
            t = statistics.median(times[name])
            rate = workload.tokens / t
            print(f"{workload.name:<52} {name:<20} {rate:>10.0f} {base / t:>15.2f}x {peaks[name]:>9.0f} {rate * flops / 1e9:>9.1f}")
        print(f"{'':<52} model FLOPs per token: {flops / 1e9:.2f} GFLOP")


if __name__ == "__main__":
    main()
