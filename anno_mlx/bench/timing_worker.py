"""One timed run of one implementation on one workload, in a process of its own, as a JSON line.

The benchmark (`throughput.py`) starts a fresh process for every measurement so that no
implementation shares a process, a BLAS or an allocator with another. This module imports only
the standard library and numpy at the top (torch and transformers where used), and it is run by
its path for transformers' ModernBERT, so that transformers' process never imports anno_mlx:
    python timing_worker.py --inputs F --only KEY --folder MODEL [--device cuda] [--cold]
Our own implementations use `measure`, `read_workload` and `report` from here, through
`python -m anno_mlx.bench.throughput --time-of NAME`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the process-wide peak is the best we have
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
            2**20 if os.uname().sysname == "Darwin" else 2**10
        )


def reset_high_water_mark() -> bool:
    """Reset the kernel's resident high-water mark to the current resident size (Linux); False
    where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def high_water_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def measure(fn: Callable[[], Any], cuda: bool = False) -> tuple[float, float]:
    """(seconds, peak MB added) of one call. On CUDA: PyTorch's peak allocation above what was
    allocated before. On Linux: the kernel's resident high-water mark, reset just before, above
    the resident size then (nothing runs beside the call). Elsewhere: resident memory sampled
    every 5 ms by a thread."""
    gc.collect()
    if cuda:
        import torch

        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - started, (torch.cuda.max_memory_allocated() - before) / 2**20
    if reset_high_water_mark():
        before = rss_mb()
        started = time.perf_counter()
        fn()
        seconds = time.perf_counter() - started
        return seconds, max(0.0, high_water_mb() - before)
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


def write_workloads(path: Path, workloads: list[dict], calls: dict[str, list], text: str) -> None:
    """Save the inputs every worker reads: `workloads` (JSON-able descriptions with a "key"),
    each key's model calls as (ids, mask or None) pairs, and the text of the pipeline workload."""
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(workloads)), "text": np.array(text)}
    for key, pairs in calls.items():
        for i, (ids, mask) in enumerate(pairs):
            arrays[f"{key}.{i}.ids"] = ids
            if mask is not None:
                arrays[f"{key}.{i}.mask"] = mask
    np.savez(path, **arrays)


def read_workload(
    path: str | Path, key: str
) -> tuple[dict, list[tuple[np.ndarray, Optional[np.ndarray]]], str]:
    """(description, model calls, text) of workload `key` in a file `write_workloads` made."""
    with np.load(path, allow_pickle=False) as data:
        (workload,) = [w for w in json.loads(str(data["meta"])) if w["key"] == key]
        calls = []
        while f"{key}.{len(calls)}.ids" in data:
            i = len(calls)
            calls.append(
                (data[f"{key}.{i}.ids"], data[f"{key}.{i}.mask"] if f"{key}.{i}.mask" in data else None)
            )
        return workload, calls, str(data["text"])


def report(fn: Callable[[], Any], warm_up: bool, cuda: bool, **extra: Any) -> None:
    """Run `fn` once unmeasured where `warm_up`, then once measured; print the result as JSON."""
    if warm_up:
        fn()
    seconds, peak = measure(fn, cuda)
    print(json.dumps(dict(seconds=seconds, peak_mb=peak, **extra)), flush=True)


def worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every timing worker takes (ours add --time-of)."""
    parser.add_argument("--inputs", help=argparse.SUPPRESS)  # the file write_workloads made
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)  # no warm-up run


def time_transformers(argv: Optional[list[str]] = None) -> None:
    """transformers' ModernBERT (sdpa attention) on one workload: the same model calls as ours;
    for the pipeline workload, the same windows through its model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    worker_arguments(parser)
    parser.add_argument("--only", nargs=1, required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = (
        transformers.ModernBertForTokenClassification.from_pretrained(
            args.folder, attn_implementation="sdpa", dtype=dtype
        )
        .to(args.device)
        .eval()
    )

    def forward(ids: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            out = model(
                input_ids=torch.from_numpy(ids.astype(np.int64)).to(args.device),
                attention_mask=None
                if mask is None
                else torch.from_numpy(mask.astype(np.int64)).to(args.device),
            ).logits
            return torch.softmax(out.float(), -1).cpu().numpy()

    workload, calls, _ = read_workload(args.inputs, args.only[0])
    report(
        lambda: [forward(ids, mask) for ids, mask in calls],
        warm_up=workload["warm_up"] and not args.cold,
        cuda=args.device == "cuda",
        anno_mlx_imported="anno_mlx" in sys.modules,
    )


if __name__ == "__main__":
    time_transformers()
