"""Training in MLX or PyTorch: NER (token classification, fine-tuned or from scratch) or a
masked-LM objective, through one loop.

Data -> tokens with word starts (the same `Tokenizer.tokenize` inference uses) -> rows and
targets made by the objective (`objectives.py`: IOB2 labels, possibly several allowed per word,
on the first token of each word; or hidden tokens) -> length-grouped batches -> AdamW with
linear warm-up and decay, gradient clipping -> the dev figure after each epoch (F1 through the
NER pipeline itself, or the masked-LM loss), keeping the best model in the output folder.

The pieces live in `training/`: the data (`data`), one step per backend (`steps`) and the state
`--resume` continues from (`state`); the model comes from `checkpoint.training_model`.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import mlx.core as mx
import numpy as np

from .checkpoint import save_folder, training_model
from .datasets import read_examples
from .errors import AnnoError
from .labelmap import LabelMap
from .loading import resolve_model
from .runners import choose
from .tokenizer import TOKENIZER_FILE
from .training.data import OBJECTIVES, Objective, batches, make_objective, training_tokenizer, training_types
from .training.settings import TrainSettings
from .training.state import check_outputs, new_state_folder, resumed_state, save_epoch_state, state_folder
from .training.steps import Step, make_step

__all__ = ["TrainSettings", "train"]


def train(
    train_file: str | Path,
    out: str | Path,
    *,
    model: Optional[str | Path] = None,
    config: Optional[str | Path] = None,
    dev_file: Optional[str | Path] = None,
    data_format: Optional[str] = None,
    tokenizer_file: Optional[str | Path] = None,
    labels: Optional[list[str]] = None,
    label_map: Optional[LabelMap] = None,
    dev_map: Optional[LabelMap] = None,
    settings: TrainSettings = TrainSettings(),
    objective: str = "ner",
    resume: bool = False,
    force: bool = False,
    backend: str = "auto",
    device: Optional[str] = None,
    on_epoch_end: Optional[Callable[[int, dict], None]] = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict[str, Any]:
    """Train and write the best model to `out` (a normal model folder). `backend`/`device` as for
    inference (`auto`: MLX on Apple Silicon, PyTorch on CUDA or other CPUs when installed).
    `label_map` trains on data typed more coarsely than the model (CoNLL's LOC for GPE, LOC,
    FAC; see `labelmap`) and scores the dev data in its own types; `dev_map` (default:
    `label_map`) is the dev data's mapping alone, for training data already in the model's
    types. `objective="mlm"` trains a masked-LM model on the data's text instead (entities
    ignored), to adapt an encoder to a domain before NER training; the best epoch is the one
    with the lowest dev loss. `on_epoch_end(epoch, summary)` runs after each epoch's state is
    saved. Returns the final summary."""
    out = Path(out).expanduser()
    state_dir = state_folder(out)
    if (model is None) == (config is None):
        raise AnnoError(
            "give exactly one of --model (a checkpoint to fine-tune) and --config (a fresh model)"
        )
    settings = settings.resolved(fresh=config is not None)
    check_outputs(out, state_dir, force, resume)
    chosen = choose(backend, device)
    if model is not None:
        model = resolve_model(model)  # a hub id is converted on first use, as for `ner`

    train_examples = read_examples(train_file, data_format)
    dev_examples = read_examples(dev_file, data_format) if dev_file else None
    if objective not in OBJECTIVES:
        raise AnnoError(f"objective {objective!r} is unknown; choose ner or mlm")
    types = None
    if objective == "ner":
        types, train_examples = training_types(
            train_examples, labels, label_map, dev_map, model, dev_examples is not None
        )
    tokenizer = training_tokenizer(
        model,
        tokenizer_file,
        train_examples,
        settings.vocab_size,
        state_dir / TOKENIZER_FILE if resume else None,
    )
    task = make_objective(objective, types, dev_map or label_map, tokenizer, settings.mask_rate)

    mx.random.seed(settings.seed)  # the fresh classifier (and a fresh model) start from the seed
    net, model_config = training_model(
        Path(model).expanduser() if model else None, Path(config) if config else None, tokenizer, task.labels
    )
    tokenizer.check_fits(net.args.vocab_size, tokenizer_file or model or config)
    max_length = min(settings.max_length, net.args.max_length)
    rows = task.rows(train_examples, tokenizer, max_length)
    steps_per_epoch = math.ceil(len(rows) / settings.batch_size)
    step = make_step(chosen, net, settings, steps_per_epoch * settings.epochs, task)

    if resume:
        first_epoch, best = resumed_state(state_dir, step, chosen.name, settings.epochs)
        log(
            f"resuming after epoch {first_epoch} (best {task.figure} so far {task.named(best['figure'])[1]:.4f})"
        )
    else:
        first_epoch, best = 0, {"figure": float("-inf"), "epoch": None}  # figure: higher is better
        new_state_folder(state_dir, tokenizer)
    log(f"training on {chosen}: {len(rows):,} rows, {steps_per_epoch:,} steps per epoch")

    summary: dict[str, Any] = {}
    for epoch in range(first_epoch, settings.epochs):
        summary = _epoch(
            step, rows, task, settings, epoch, tokenizer.pad_token_id, steps_per_epoch, out, best
        )
        if dev_examples is not None:
            figure, summary["dev"] = task.evaluate(step.runner(), tokenizer, dev_examples, max_length)
        else:
            figure = -summary["loss"]  # without dev data the last epoch is kept
        improved = figure > best["figure"] or dev_examples is None
        if improved:
            best = {"figure": figure, "epoch": epoch + 1}
            step.sync()
            name, value = task.named(figure)
            dev_figure = {f"dev_{name}": value} if dev_examples is not None else {}
            model_config["anno_mlx"] = {
                "format": 1,
                "trained": {**asdict(settings), "objective": objective, "epoch": epoch + 1, **dev_figure},
            }
            save_folder(net, model_config, out, {TOKENIZER_FILE: state_dir / TOKENIZER_FILE})
        save_epoch_state(state_dir, step, epoch + 1, best, chosen.name)
        dev_text = (
            f", {task.figure} {task.named(figure)[1]:.4f}{' (best)' if improved else ''}"
            if dev_examples is not None
            else ""
        )
        log(
            f"epoch {epoch + 1}: loss {summary['loss']:.4f}{dev_text}, {summary['seconds']:.1f} s ({summary['tokens'] / summary['seconds']:,.0f} tokens/s)"
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, summary)
    shutil.rmtree(state_dir, ignore_errors=True)
    summary["best"] = {
        "epoch": best["epoch"],
        **(dict([task.named(best["figure"])]) if dev_examples is not None else {}),
    }
    return summary


def _epoch(
    step: Step,
    rows: list[tuple],
    task: Objective,
    settings: TrainSettings,
    epoch: int,
    pad_id: int,
    steps_per_epoch: int,
    out: Path,
    best: dict,
) -> dict[str, Any]:
    """One pass over the rows with a progress bar; its mean loss, seconds and tokens."""
    from tqdm import tqdm

    started, seen, total_loss = time.perf_counter(), 0, 0.0
    # Dropout masks from (seed, epoch) alone, so a resumed run draws what an uninterrupted one would.
    step.reseed(int(np.random.SeedSequence([settings.seed, epoch]).generate_state(1)[0]))
    bar = tqdm(
        total=steps_per_epoch,
        desc=f"epoch {epoch + 1}/{settings.epochs}",
        file=sys.stderr,
        leave=False,
        mininterval=0.5,
    )
    for ids, mask, targets in batches(
        rows, task, settings.batch_size, settings.seed, epoch, pad_id, step.width_multiple
    ):
        loss = step(ids, mask, targets)
        if not math.isfinite(loss):
            raise AnnoError(
                f"the training loss became {loss} in epoch {epoch + 1}; lower --lr (now {settings.learning_rate}) "
                f"or --max-grad-norm; {'the best epoch so far is in ' + str(out) if best['epoch'] else 'nothing was written'}"
            )
        seen += int(mask.sum())
        total_loss += loss
        bar.set_postfix(
            loss=f"{loss:.4f}",
            tokens_per_s=f"{seen / (time.perf_counter() - started):.0f}",
            refresh=False,
        )
        bar.update(1)
    bar.close()
    return {
        "epoch": epoch + 1,
        "loss": total_loss / steps_per_epoch,
        "seconds": time.perf_counter() - started,
        "tokens": seen,
    }
