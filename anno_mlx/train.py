"""Training in MLX or PyTorch: NER (token classification, fine-tuned or from scratch) or a
masked-LM objective, through one loop.

Data -> tokens with word starts (the same `Tokenizer.tokenize` inference uses) -> rows and
targets made by the objective (`objectives.py`: IOB2 labels, possibly several allowed per word,
on the first token of each word; or hidden tokens) -> length-grouped batches -> AdamW with
linear warm-up and decay, gradient clipping -> the dev figure after each epoch (F1 through the
NER pipeline itself, or the masked-LM loss), keeping the best model in the output folder.

Only the optimisation step differs between backends (`MLXStep`, `TorchStep`): the PyTorch one
trains the mirror model of `models/modernbert_torch.py` (on CUDA in bfloat16 autocast with
float32 weights), and its weights are copied back into the MLX model before each save, so the
output folder is the same either way.

After every epoch the full training state (weights, optimizer, epoch, best figure, tokenizer) is
written next to the output (`OUT.state/`), so `--resume` continues an interrupted run and ends
where the uninterrupted run would have: batch order and masks depend only on the seed, the epoch
and the batch (and, for masks, the padded width, which differs on CUDA).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .backends import choose
from .checkpoint import check_weights, read_config, read_weights, save_folder
from .datasets import entity_types_of, read_examples
from .errors import AnnoError
from .labelmap import ANY, LabelMap, allowed_types, coarse_examples
from .models.modernbert import ModelArgs, ModernBertForMaskedLM, ModernBertForTokenClassification
from .objectives import MaskedLM, TokenClassification
from .outputs import check_output_folder, check_replaceable, write_marker
from .schemes import entity_types
from .tokenizer import TOKENIZER_FILE, Tokenizer, pad_rows, train_bpe

# Defaults where a setting is left unset (None): fine-tuning a trained encoder wants a small
# learning rate and few epochs; a fresh model learns nothing useful in that budget.
FINE_TUNE_DEFAULTS = {"learning_rate": 5e-5, "epochs": 3}
FRESH_DEFAULTS = {"learning_rate": 1e-3, "epochs": 10}


@dataclass
class TrainSettings:
    epochs: Optional[int] = None  # see FINE_TUNE_DEFAULTS / FRESH_DEFAULTS
    batch_size: int = 16
    learning_rate: Optional[float] = None
    warmup: float = 0.1  # share of all steps spent warming up
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 512
    seed: int = 0
    vocab_size: int = 8000  # for a tokenizer trained on the data
    mask_rate: float = 0.3  # masked-LM: share of tokens hidden

    def resolved(self, fresh: bool) -> "TrainSettings":
        """These settings with the unset ones filled in for a fresh model or a fine-tune,
        checked: a NaN learning rate or zero epochs would save a broken model or none at all."""
        defaults = FRESH_DEFAULTS if fresh else FINE_TUNE_DEFAULTS
        settings = replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        settings.check()
        return settings

    def check(self) -> None:
        whole = {"epochs": 1, "batch_size": 1, "max_length": 8, "vocab_size": 100}
        for name, least in whole.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise AnnoError(
                    f"--{name.replace('_', '-')} {value!r} must be a whole number of at least {least}"
                )
        ranges = {
            "learning_rate": (0, None),
            "weight_decay": (0, None),
            "max_grad_norm": (0, None),
            "warmup": (0, 1),
        }
        for name, (low, high) in ranges.items():
            value = float(getattr(self, name))
            if (
                not math.isfinite(value)
                or value < low
                or (name in ("learning_rate", "max_grad_norm") and value == 0)
                or (high is not None and value >= high)
            ):
                flag = "--lr" if name == "learning_rate" else f"--{name.replace('_', '-')}"
                bounds = (
                    f"in [{low}, {high})"
                    if high is not None
                    else ("above 0" if name in ("learning_rate", "max_grad_norm") else "at least 0")
                )
                raise AnnoError(f"{flag} {getattr(self, name)!r} must be a finite number {bounds}")


def batches(rows, objective, batch_size: int, seed: int, epoch: int, pad_id: int, multiple: int = 1):
    """Length-grouped numpy batches (inputs, attention mask, targets) in an order fixed by (seed,
    epoch) alone, padded to a width that is a multiple of `multiple`; the objective makes each
    batch's targets (and, for masked-LM, hides tokens) from the same seeds."""
    rng = np.random.default_rng([seed, epoch])
    order = np.argsort([len(ids) + rng.random() for ids, _ in rows], kind="stable")
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for number, g in enumerate(rng.permutation(len(groups))):
        chosen = [rows[i] for i in groups[g]]
        ids, mask = pad_rows([ids for ids, _ in chosen], pad_id, multiple)
        inputs, targets = objective.targets(chosen, ids, mask, np.random.default_rng([seed, epoch, number]))
        yield inputs, mask, targets


def learning_rate(step: int, settings: TrainSettings, total: int) -> float:
    """Linear warm-up from 0 over `settings.warmup` of the steps, then linear decay to 0."""
    warmup = max(int(settings.warmup * total), 1)
    if step < warmup:
        return settings.learning_rate * step / warmup
    return settings.learning_rate * max(total - step, 0) / max(total - warmup, 1)


class MLXStep:
    """AdamW steps on the MLX model itself."""

    width_multiple = 1

    def __init__(self, net, settings: TrainSettings, total: int, objective):
        self.net = net
        self.settings = settings
        self.optimizer = optim.AdamW(
            learning_rate=lambda step: mx.array(learning_rate(int(step), settings, total), dtype=mx.float32),
            weight_decay=settings.weight_decay,
            bias_correction=True,  # standard AdamW, as PyTorch has it
        )
        self.value_and_grad = nn.value_and_grad(
            net, lambda model, ids, mask, targets: objective.loss(model(ids, mask), targets)
        )

    def __call__(self, ids: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> float:
        self.net.train()  # dropout on
        loss, grads = self.value_and_grad(self.net, mx.array(ids), mx.array(mask), mx.array(labels))
        grads, _ = optim.clip_grad_norm(grads, self.settings.max_grad_norm)
        self.optimizer.update(self.net, grads)
        mx.eval(loss, self.net.parameters(), self.optimizer.state)
        return loss.item()

    def model(self):
        """The model to evaluate with (dropout off)."""
        return self.net.eval()

    def reseed(self, seed: int) -> None:
        mx.random.seed(seed)

    def sync(self) -> None:
        """Bring the MLX model up to date (it is the one trained)."""

    def save_state(self, folder: Path) -> None:
        arrays = {f"model.{k}": v for k, v in tree_flatten(self.net.parameters())}
        arrays.update(
            {f"optimizer.{k}": v for k, v in tree_flatten(self.optimizer.state) if isinstance(v, mx.array)}
        )
        tmp = folder / "state.safetensors.tmp.safetensors"
        mx.save_safetensors(str(tmp), arrays)
        tmp.replace(folder / "state.safetensors")

    def load_state(self, folder: Path) -> None:
        arrays = mx.load(str(folder / "state.safetensors"))
        self.net.load_weights(
            [(k[len("model.") :], v) for k, v in arrays.items() if k.startswith("model.")], strict=True
        )
        self.optimizer.init(self.net.trainable_parameters())
        self.optimizer.state = tree_unflatten(
            [(k[len("optimizer.") :], v) for k, v in arrays.items() if k.startswith("optimizer.")]
        )


class TorchStep:
    """AdamW steps on the PyTorch mirror of the MLX model (same weights, same math)."""

    def __init__(self, net, settings: TrainSettings, total: int, device: str, objective):
        import torch

        from .models.modernbert_torch import from_mlx

        self.torch = torch
        self.net = net
        self.settings = settings
        self.device = device
        self.objective = objective
        self.mirror = from_mlx(net, torch.float32, device).train()
        self.optimizer = torch.optim.AdamW(
            self.mirror.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay, eps=1e-8
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate(step, settings, total) / settings.learning_rate
        )
        # bfloat16 matrix work on CUDA, float32 weights and optimizer state.
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else None
        # On CUDA each new batch width costs a one-off setup (the first epoch ran ~5x slower than
        # the next ones); widths rounded to 64 leave a handful of shapes.
        self.width_multiple = 64 if device == "cuda" else 1

    def __call__(self, ids: np.ndarray, mask: np.ndarray, labels: np.ndarray) -> float:
        torch = self.torch
        ids_t, mask_t = (torch.from_numpy(a.astype(np.int64)).to(self.device) for a in (ids, mask))
        targets = torch.from_numpy(labels).to(self.device)
        self.mirror.train()
        if self.autocast is not None:
            with self.autocast:
                logits = self.mirror(ids_t, mask_t)
        else:
            logits = self.mirror(ids_t, mask_t)
        loss = self.objective.torch_loss(logits, targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.mirror.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()
        self.schedule.step()
        return float(loss.item())

    def model(self):
        return self.mirror.eval()

    def reseed(self, seed: int) -> None:
        self.torch.manual_seed(seed)

    def sync(self) -> None:
        """Copy the trained weights into the MLX model, which is what gets saved."""
        own = dict(
            tree_flatten(self.net.parameters())
        )  # a tied decoder is the embeddings, not a weight of its own
        state = {k: v for k, v in self.mirror.state_dict().items() if k in own}
        self.net.load_weights(
            [(k, mx.array(v.detach().float().cpu().numpy())) for k, v in state.items()], strict=True
        )

    def save_state(self, folder: Path) -> None:
        tmp = folder / "state.pt.tmp"
        self.torch.save(
            {
                "model": self.mirror.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
            },
            tmp,
        )
        tmp.replace(folder / "state.pt")

    def load_state(self, folder: Path) -> None:
        state = self.torch.load(folder / "state.pt", map_location=self.device, weights_only=True)
        self.mirror.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sync()


def build_model(
    base: Optional[Path], config_file: Optional[Path], tokenizer: Tokenizer, labels: Optional[list[str]]
) -> tuple[nn.Module, dict[str, Any]]:
    """A token-classification model for `labels` (a masked-LM model when `labels` is None): the
    encoder (and prediction head) of `base` (a converted or Hugging Face masked-LM or
    token-classification folder) with a new classifier or decoder where `base` has none, or a
    fresh model from the ModelArgs in `config_file`."""
    id2label = dict(enumerate(labels)) if labels is not None else None
    if base is not None:
        config = read_config(base)
        if config.get("quantization"):
            raise AnnoError(f"{base} is quantized; fine-tune from a float checkpoint")
    else:
        try:
            config = json.loads(Path(config_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise AnnoError(f"--config {config_file} is not a readable JSON file ({err})") from None
        config.setdefault("model_type", "modernbert")
        config["vocab_size"] = tokenizer.vocab_size
        config.update({f"{name}_token_id": i for name, i in tokenizer.special_ids().items() if i is not None})
    if config.get("model_type") != "modernbert":
        raise AnnoError(f"model_type {config.get('model_type')!r} cannot be trained; only modernbert")
    if id2label is not None:
        config.update(
            architectures=["ModernBertForTokenClassification"],
            id2label={str(i): label for i, label in id2label.items()},
            label2id={label: i for i, label in id2label.items()},
        )
    else:
        config["architectures"] = ["ModernBertForMaskedLM"]
        for key in ("id2label", "label2id", "num_labels"):
            config.pop(key, None)
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    try:
        args = ModelArgs.from_dict(config)
    except (TypeError, ValueError) as err:
        raise AnnoError(f"the model config is not usable: {err}") from None
    model = ModernBertForTokenClassification(args) if id2label is not None else ModernBertForMaskedLM(args)
    # Written out in full, so that the output folder describes the model without our defaults.
    config.update(
        {
            k: v
            for k, v in asdict(args).items()
            if k != "id2label" and (id2label is not None or k != "num_labels")
        }
    )
    if base is not None:
        weights = model.sanitize(read_weights(base))
        same_labels = {int(k): v for k, v in (read_config(base).get("id2label") or {}).items()} == id2label
        weights = {k: v for k, v in weights.items() if same_labels or not k.startswith("classifier.")}
        check_weights(model, weights, base, may_lack=("classifier.", "decoder."))
        model.load_weights(list(weights.items()), strict=False)
    model.set_dtype(mx.float32)
    return model, config


def label_map_source(folder: Path) -> dict[int, str]:
    """The id2label of a model folder, whose types a --map fine-tune keeps."""
    return {int(k): v for k, v in (read_config(folder).get("id2label") or {}).items()}


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
    state_dir = out.parent / f"{out.name}.state"
    if (model is None) == (config is None):
        raise AnnoError(
            "give exactly one of --model (a checkpoint to fine-tune) and --config (a fresh model)"
        )
    settings = settings.resolved(fresh=config is not None)
    check_outputs(out, state_dir, force, resume)
    chosen = choose(backend, device)
    train_examples = read_examples(train_file, data_format)
    dev_examples = read_examples(dev_file, data_format) if dev_file else None

    if objective not in ("ner", "mlm"):
        raise AnnoError(f"objective {objective!r} is unknown; choose ner or mlm")
    if objective == "ner":
        if (label_map or dev_map) is not None and not labels:
            labels = entity_types(label_map_source(Path(model).expanduser())) if model is not None else []
            if not labels:
                raise AnnoError(
                    "--map needs the model's types: give --labels (or fine-tune a --model that has them)"
                )
        if dev_examples is not None and (dev_map or label_map) is not None:
            (
                dev_map or label_map
            ).to_data()  # a map the dev data cannot be scored with fails now, not after an epoch
        if not labels and any(ANY in kind for e in train_examples for _, _, kind in e.spans):
            raise AnnoError(
                "the training data has labels that allow several types (A|B); give the model's types with --labels"
            )
        types = labels or entity_types_of(train_examples)
        if label_map is not None:
            train_examples = coarse_examples(train_examples, label_map, types)
        wanted = {t for e in train_examples for _, _, kind in e.spans for t in allowed_types(kind)}
        unknown = sorted((wanted | {t for e in train_examples for t in e.unannotated}) - set(types))
        if unknown:
            raise AnnoError(f"the training data has types not in --labels: {', '.join(unknown)}")

    tokenizer = _tokenizer(model, tokenizer_file, train_examples, settings, state_dir if resume else None)
    try:
        task = (
            TokenClassification(types, dev_map or label_map)
            if objective == "ner"
            else MaskedLM(tokenizer, settings.mask_rate)
        )
    except ValueError as err:
        raise AnnoError(str(err)) from None
    mx.random.seed(settings.seed)  # the fresh classifier (and a fresh model) start from the seed
    net, model_config = build_model(
        Path(model).expanduser() if model else None, Path(config) if config else None, tokenizer, task.labels
    )
    tokenizer.check_fits(net.args.vocab_size, tokenizer_file or model or config)
    max_length = min(settings.max_length, net.args.max_position_embeddings)
    rows = task.rows(train_examples, tokenizer, max_length)
    steps_per_epoch = math.ceil(len(rows) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    step = (
        TorchStep(net, settings, total, chosen.device, task)
        if chosen.name == "torch"
        else MLXStep(net, settings, total, task)
    )

    first_epoch, best = 0, {"figure": float("-inf"), "epoch": None}  # figure: higher is better
    if resume:
        first_epoch, best = _resume(state_dir, step, chosen.name, settings.epochs)
        log(
            f"resuming after epoch {first_epoch} (best {task.figure} so far {task.named(best['figure'])[1]:.4f})"
        )
    else:
        new_state_folder(state_dir)
        tokenizer.backend.save(str(state_dir / TOKENIZER_FILE))
    log(f"training on {chosen}: {len(rows):,} rows, {steps_per_epoch:,} steps per epoch")

    from tqdm import tqdm

    summary: dict[str, Any] = {}
    for epoch in range(first_epoch, settings.epochs):
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
        for ids, mask, labels_batch in batches(
            rows, task, settings.batch_size, settings.seed, epoch, tokenizer.pad_token_id, step.width_multiple
        ):
            loss = step(ids, mask, labels_batch)
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
        summary = {
            "epoch": epoch + 1,
            "loss": total_loss / steps_per_epoch,
            "seconds": time.perf_counter() - started,
            "tokens": seen,
        }
        if dev_examples is not None:
            figure, summary["dev"] = task.evaluate(step.model(), tokenizer, dev_examples, max_length)
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
        step.save_state(state_dir)
        (state_dir / "state.json.tmp").write_text(
            json.dumps({"epoch": epoch + 1, "best": best, "backend": chosen.name})
        )
        (state_dir / "state.json.tmp").replace(state_dir / "state.json")
        dev_text = (
            f", {task.figure} {task.named(figure)[1]:.4f}{' (best)' if improved else ''}"
            if dev_examples is not None
            else ""
        )
        log(
            f"epoch {epoch + 1}: loss {summary['loss']:.4f}{dev_text}, {summary['seconds']:.1f} s ({seen / summary['seconds']:,.0f} tokens/s)"
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, summary)
    shutil.rmtree(state_dir, ignore_errors=True)
    summary["best"] = {
        "epoch": best["epoch"],
        **(dict([task.named(best["figure"])]) if dev_examples is not None else {}),
    }
    return summary


def _resume(state_dir: Path, step, backend: str, epochs: int) -> tuple[int, dict]:
    """The epoch to continue from and the best so far, from a state folder that may be damaged
    (then a one-line error; the state is left as it is)."""
    try:
        state = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
        first_epoch, best, written_by = state["epoch"], state["best"], state.get("backend", "mlx")
        if (
            not isinstance(first_epoch, int)
            or not isinstance(best, dict)
            or not {"figure", "epoch"} <= best.keys()
        ):
            raise ValueError("unexpected fields")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise AnnoError(
            f"the training state in {state_dir} is damaged ({err}); start again without --resume"
        ) from None
    if written_by != backend:
        raise AnnoError(
            f"{state_dir} was written by the {written_by} backend; resume with --backend {written_by}"
        )
    if first_epoch >= epochs:
        raise AnnoError(
            f"{state_dir} has already done {first_epoch} epochs; --epochs {epochs} leaves nothing to resume (raise --epochs)"
        )
    try:
        step.load_state(state_dir)
    except Exception as err:  # safetensors/torch.load report damage with their own exception types
        raise AnnoError(
            f"the training state in {state_dir} is damaged ({type(err).__name__}); start again without --resume"
        ) from None
    return first_epoch, best


def check_outputs(out: Path, state_dir: Path, force: bool, resume: bool) -> None:
    """Before any work: an existing output (or an interrupted run's state) is replaced only with
    --force (or continued with --resume) and only when anno-mlx wrote it."""
    if resume and not (state_dir / "state.json").is_file():
        raise AnnoError(f"nothing to resume: {state_dir} holds no training state")
    check_output_folder(out, force or resume, "pass --force to replace it (or --resume to continue)")
    if not resume and os.path.lexists(state_dir):
        check_replaceable(state_dir)
        if (
            state_dir / "state.json"
        ).is_file() and not force:  # a state before its first epoch ended holds nothing to lose
            raise AnnoError(
                f"{state_dir} holds an interrupted training run; pass --resume to continue it or --force to start afresh"
            )


def new_state_folder(state_dir: Path) -> None:
    """An empty training-state folder (a replaceable old one removed), marked as ours."""
    if os.path.lexists(state_dir):
        check_replaceable(state_dir)
        shutil.rmtree(state_dir)
    try:
        state_dir.mkdir(parents=True)
    except OSError as err:
        raise AnnoError(f"cannot write {state_dir}: {err.strerror}") from None
    write_marker(state_dir, "training state")


def _tokenizer(
    model, tokenizer_file, examples, settings: TrainSettings, state_dir: Optional[Path]
) -> Tokenizer:
    if state_dir is not None:
        path = state_dir / TOKENIZER_FILE
    elif tokenizer_file is not None:
        path = Path(tokenizer_file)
    elif model is not None:
        path = Path(model).expanduser() / TOKENIZER_FILE
    else:
        backend = train_bpe([e.text for e in examples], settings.vocab_size)
        return Tokenizer(backend)
    if not path.is_file():
        raise AnnoError(f"no tokenizer at {path}; give --tokenizer tokenizer.json")
    return Tokenizer.from_file(path)
