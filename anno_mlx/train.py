"""Token-classification fine-tuning (or training from scratch), in MLX or PyTorch.

Data -> tokens with word starts (the same `Tokenizer.tokenize` inference uses) -> IOB2 labels on
the first token of each word (other tokens are ignored by the loss) -> length-grouped batches ->
AdamW with linear warm-up and decay, gradient clipping -> evaluation on the dev set each epoch
with the NER pipeline itself, keeping the best model in the output folder.

One loop serves both backends; only the optimisation step differs (`MLXStep`, `TorchStep`): the
PyTorch one trains the mirror model of `models/modernbert_torch.py` (on CUDA in bfloat16 autocast
with float32 weights), and its weights are copied back into the MLX model before each save, so
the output folder is the same either way.

After every epoch the full training state (weights, optimizer, epoch, best score, tokenizer) is
written next to the output (`OUT.state/`), so `--resume` continues an interrupted run and ends
where the uninterrupted run would have: batch order depends only on the seed and the epoch.
"""

from __future__ import annotations

import bisect
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_unflatten

from .backends import choose
from .checkpoint import check_weights, read_config, read_weights, save_folder
from .datasets import Example, entity_types_of, read_examples
from .errors import AnnoError
from .metrics import evaluate
from .models.modernbert import ModelArgs, ModernBertForTokenClassification
from .ner import NER
from .tokenizer import TOKENIZER_FILE, Tokenizer, train_bpe

IGNORE = -100


@dataclass
class TrainSettings:
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 5e-5
    warmup: float = 0.1  # share of all steps spent warming up
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 512
    seed: int = 0
    vocab_size: int = 8000  # for a tokenizer trained on the data


def iob2_labels(types: list[str]) -> list[str]:
    return ["O"] + [f"{prefix}-{kind}" for kind in types for prefix in "BI"]


def token_labels(text: str, tokens, spans: list[tuple[int, int, str]], label2id: dict[str, int]) -> np.ndarray:
    """IOB2 label ids on the first token of each word, IGNORE elsewhere. A word belongs to the
    entity that holds its first non-space character; the entity's first word gets B-."""
    labels = np.full(len(tokens), IGNORE, dtype=np.int32)
    starts = [s for s, _, _ in spans]
    last_entity = -1
    for i in np.flatnonzero(tokens.word_start).tolist():
        a, b = int(tokens.offsets[i, 0]), int(tokens.offsets[i, 1])
        while a < b and text[a].isspace():
            a += 1
        k = bisect.bisect_right(starts, a) - 1
        if k >= 0 and spans[k][0] <= a < spans[k][1]:
            kind = spans[k][2]
            labels[i] = label2id[("I-" if k == last_entity else "B-") + kind]
            last_entity = k
        else:
            labels[i] = label2id["O"]
    return labels


def encode(examples: list[Example], tokenizer: Tokenizer, label2id: dict[str, int], max_length: int):
    """(ids, labels) rows of at most max_length tokens, special tokens included (and ignored)."""
    prefix, suffix = tokenizer.special_tokens()
    capacity = max_length - len(prefix) - len(suffix)
    rows = []
    for example in examples:
        tokens = tokenizer.tokenize(example.text)
        labels = token_labels(example.text, tokens, example.spans, label2id)
        for start in range(0, max(len(tokens), 1), capacity):
            ids = np.concatenate([prefix, tokens.ids[start : start + capacity], suffix]).astype(np.int32)
            lab = np.concatenate(
                [np.full(len(prefix), IGNORE), labels[start : start + capacity], np.full(len(suffix), IGNORE)]
            ).astype(np.int32)
            rows.append((ids, lab))
    return rows


def batches(rows, batch_size: int, seed: int, epoch: int, pad_id: int, multiple: int = 1):
    """Length-grouped numpy batches (ids, mask, labels) in an order fixed by (seed, epoch) alone,
    padded to a width that is a multiple of `multiple`."""
    rng = np.random.default_rng([seed, epoch])
    order = np.argsort([len(ids) + rng.random() for ids, _ in rows], kind="stable")
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for g in rng.permutation(len(groups)):
        chosen = [rows[i] for i in groups[g]]
        width = -(-max(len(ids) for ids, _ in chosen) // multiple) * multiple
        ids = np.full((len(chosen), width), pad_id, dtype=np.int32)
        labels = np.full((len(chosen), width), IGNORE, dtype=np.int32)
        mask = np.zeros((len(chosen), width), dtype=np.int32)
        for r, (i, lab) in enumerate(chosen):
            ids[r, : len(i)], labels[r, : len(lab)], mask[r, : len(i)] = i, lab, 1
        yield ids, mask, labels


def learning_rate(step: int, settings: TrainSettings, total: int) -> float:
    """Linear warm-up from 0 over `settings.warmup` of the steps, then linear decay to 0."""
    warmup = max(int(settings.warmup * total), 1)
    if step < warmup:
        return settings.learning_rate * step / warmup
    return settings.learning_rate * max(total - step, 0) / max(total - warmup, 1)


def loss_fn(model, ids, mask, labels):
    logits = model(ids, mask)
    valid = labels != IGNORE
    losses = nn.losses.cross_entropy(logits, mx.where(valid, labels, 0), reduction="none")
    return (losses * valid).sum() / mx.maximum(valid.sum(), 1)


class MLXStep:
    """AdamW steps on the MLX model itself."""

    width_multiple = 1

    def __init__(self, net, settings: TrainSettings, total: int):
        self.net = net
        self.settings = settings
        self.optimizer = optim.AdamW(
            learning_rate=lambda step: mx.array(learning_rate(int(step), settings, total), dtype=mx.float32),
            weight_decay=settings.weight_decay,
            bias_correction=True,  # standard AdamW, as PyTorch has it
        )
        self.value_and_grad = nn.value_and_grad(net, loss_fn)

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
        arrays.update({f"optimizer.{k}": v for k, v in tree_flatten(self.optimizer.state) if isinstance(v, mx.array)})
        tmp = folder / "state.safetensors.tmp.safetensors"
        mx.save_safetensors(str(tmp), arrays)
        tmp.replace(folder / "state.safetensors")

    def load_state(self, folder: Path) -> None:
        arrays = mx.load(str(folder / "state.safetensors"))
        self.net.load_weights([(k[len("model.") :], v) for k, v in arrays.items() if k.startswith("model.")], strict=True)
        self.optimizer.init(self.net.trainable_parameters())
        self.optimizer.state = tree_unflatten([(k[len("optimizer.") :], v) for k, v in arrays.items() if k.startswith("optimizer.")])


class TorchStep:
    """AdamW steps on the PyTorch mirror of the MLX model (same weights, same math)."""

    def __init__(self, net, settings: TrainSettings, total: int, device: str):
        import torch

        from .models.modernbert_torch import from_mlx

        self.torch = torch
        self.net = net
        self.settings = settings
        self.device = device
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
        ids_t, mask_t, labels_t = (torch.from_numpy(a.astype(np.int64)).to(self.device) for a in (ids, mask, labels))
        self.mirror.train()
        if self.autocast is not None:
            with self.autocast:
                logits = self.mirror(ids_t, mask_t)
        else:
            logits = self.mirror(ids_t, mask_t)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels_t.flatten(), ignore_index=IGNORE)
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
        state = self.mirror.state_dict()
        self.net.load_weights([(k, mx.array(v.detach().float().cpu().numpy())) for k, v in state.items()], strict=True)

    def save_state(self, folder: Path) -> None:
        tmp = folder / "state.pt.tmp"
        self.torch.save(
            {"model": self.mirror.state_dict(), "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}, tmp
        )
        tmp.replace(folder / "state.pt")

    def load_state(self, folder: Path) -> None:
        state = self.torch.load(folder / "state.pt", map_location=self.device, weights_only=True)
        self.mirror.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sync()


def build_model(
    base: Optional[Path], config_file: Optional[Path], tokenizer: Tokenizer, labels: list[str]
) -> tuple[ModernBertForTokenClassification, dict[str, Any]]:
    """A token-classification model for `labels`: the encoder (and prediction head) of `base`
    (a converted or Hugging Face masked-LM or token-classification folder) with a new
    classifier, or a fresh model from the ModelArgs in `config_file`."""
    id2label = dict(enumerate(labels))
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
    config.update(
        architectures=["ModernBertForTokenClassification"],
        id2label={str(i): label for i, label in id2label.items()},
        label2id={label: i for i, label in id2label.items()},
    )
    config.pop("quantization", None)
    config.pop("quantization_config", None)
    try:
        args = ModelArgs.from_dict(config)
    except (TypeError, ValueError) as err:
        raise AnnoError(f"the model config is not usable: {err}") from None
    model = ModernBertForTokenClassification(args)
    # Written out in full, so that the output folder describes the model without our defaults.
    config.update({k: v for k, v in asdict(args).items() if k != "id2label"})
    if base is not None:
        weights = model.sanitize(read_weights(base))
        same_labels = {int(k): v for k, v in (read_config(base).get("id2label") or {}).items()} == id2label
        weights = {k: v for k, v in weights.items() if same_labels or not k.startswith("classifier.")}
        check_weights(model, weights, base, may_lack=("classifier.",))
        model.load_weights(list(weights.items()), strict=False)
    model.set_dtype(mx.float32)
    return model, config


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
    settings: TrainSettings = TrainSettings(),
    resume: bool = False,
    force: bool = False,
    backend: str = "auto",
    device: Optional[str] = None,
    on_epoch_end: Optional[Callable[[int, dict], None]] = None,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict[str, Any]:
    """Train and write the best model to `out` (a normal model folder). `backend`/`device` as for
    inference (`auto`: MLX on Apple Silicon, PyTorch on CUDA or other CPUs when installed).
    `on_epoch_end(epoch, summary)` runs after each epoch's state is saved. Returns the final
    summary."""
    out = Path(out).expanduser()
    state_dir = out.parent / f"{out.name}.state"
    if (model is None) == (config is None):
        raise AnnoError("give exactly one of --model (a checkpoint to fine-tune) and --config (a fresh model)")
    if out.exists() and not (force or resume):
        raise AnnoError(f"{out} already exists; pass --force to replace it (or --resume to continue)")
    if resume and not (state_dir / "state.json").is_file():
        raise AnnoError(f"nothing to resume: {state_dir} holds no training state")
    chosen = choose(backend, device)
    train_examples = read_examples(train_file, data_format)
    dev_examples = read_examples(dev_file, data_format) if dev_file else None

    types = labels or entity_types_of(train_examples)
    unknown = sorted(set(entity_types_of(train_examples)) - set(types))
    if unknown:
        raise AnnoError(f"the training data has types not in --labels: {', '.join(unknown)}")
    label_list = iob2_labels(list(types))
    label2id = {label: i for i, label in enumerate(label_list)}

    tokenizer = _tokenizer(model, tokenizer_file, train_examples, settings, state_dir if resume else None)
    mx.random.seed(settings.seed)  # the fresh classifier (and a fresh model) start from the seed
    net, model_config = build_model(Path(model).expanduser() if model else None, Path(config) if config else None, tokenizer, label_list)
    max_length = min(settings.max_length, net.args.max_position_embeddings)
    rows = encode(train_examples, tokenizer, label2id, max_length)
    steps_per_epoch = math.ceil(len(rows) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    step = TorchStep(net, settings, total, chosen.device) if chosen.name == "torch" else MLXStep(net, settings, total)

    first_epoch, best = 0, {"f1": -1.0, "epoch": None}
    if resume:
        state = json.loads((state_dir / "state.json").read_text())
        if state.get("backend", "mlx") != chosen.name:
            raise AnnoError(f"{state_dir} was written by the {state.get('backend', 'mlx')} backend; resume with --backend {state.get('backend', 'mlx')}")
        step.load_state(state_dir)
        first_epoch, best = state["epoch"], state["best"]
        log(f"resuming after epoch {first_epoch} (best dev F1 so far {best['f1']:.4f})")
    else:
        state_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.backend.save(str(state_dir / TOKENIZER_FILE))
    log(f"training on {chosen}: {len(rows):,} rows, {steps_per_epoch:,} steps per epoch")

    from tqdm import tqdm

    summary: dict[str, Any] = {}
    for epoch in range(first_epoch, settings.epochs):
        started, seen, total_loss = time.perf_counter(), 0, 0.0
        # Dropout masks from (seed, epoch) alone, so a resumed run draws what an uninterrupted one would.
        step.reseed(int(np.random.SeedSequence([settings.seed, epoch]).generate_state(1)[0]))
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{settings.epochs}", file=sys.stderr, leave=False, mininterval=0.5)
        for ids, mask, labels_batch in batches(rows, settings.batch_size, settings.seed, epoch, tokenizer.pad_token_id, step.width_multiple):
            loss = step(ids, mask, labels_batch)
            seen += int(mask.sum())
            total_loss += loss
            bar.set_postfix(loss=f"{loss:.4f}", tokens_per_s=f"{seen / (time.perf_counter() - started):.0f}", refresh=False)
            bar.update(1)
        bar.close()
        summary = {"epoch": epoch + 1, "loss": total_loss / steps_per_epoch, "seconds": time.perf_counter() - started, "tokens": seen}
        if dev_examples is not None:
            summary["dev"] = score(step.model(), tokenizer, label_list, dev_examples, max_length)
            f1 = summary["dev"]["strict"]["micro"]["f1"]
        else:
            f1 = -summary["loss"]  # without dev data the last epoch is kept
        improved = f1 > best["f1"] or dev_examples is None
        if improved:
            best = {"f1": f1, "epoch": epoch + 1}
            step.sync()
            model_config["anno_mlx"] = {"format": 1, "trained": {**asdict(settings), "epoch": epoch + 1, "dev_f1": f1 if dev_examples else None}}
            save_folder(net, model_config, out, {TOKENIZER_FILE: state_dir / TOKENIZER_FILE})
        step.save_state(state_dir)
        (state_dir / "state.json.tmp").write_text(json.dumps({"epoch": epoch + 1, "best": best, "backend": chosen.name}))
        (state_dir / "state.json.tmp").replace(state_dir / "state.json")
        dev_text = f", dev F1 {f1:.4f}{' (best)' if improved else ''}" if dev_examples is not None else ""
        log(f"epoch {epoch + 1}: loss {summary['loss']:.4f}{dev_text}, {summary['seconds']:.1f} s ({seen / summary['seconds']:,.0f} tokens/s)")
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, summary)
    shutil.rmtree(state_dir, ignore_errors=True)
    summary["best"] = best
    return summary


def score(model, tokenizer: Tokenizer, labels: list[str], examples: list[Example], max_length: int) -> dict:
    """Evaluation figures of `model` on `examples`, through the inference pipeline itself."""
    ner = NER(model, tokenizer, dict(enumerate(labels)), max_length=max_length)
    predicted = ner.batch([e.text for e in examples])
    return evaluate([e.spans for e in examples], [[(p.start, p.end, p.label) for p in doc] for doc in predicted])


def _tokenizer(model, tokenizer_file, examples, settings: TrainSettings, state_dir: Optional[Path]) -> Tokenizer:
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
