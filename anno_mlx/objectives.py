"""What a training run optimises: entity labels per word (`TokenClassification`) or hidden
tokens (`MaskedLM`, for adapting an encoder to a domain's text before NER training).

An objective turns examples into rows, a batch of rows into model inputs and targets, targets
and logits into a loss (the same math in MLX and in PyTorch) and a model into a dev figure where
higher is better. The loop in `train.py` is the same for both.
"""

from __future__ import annotations

import bisect
from typing import Optional, Sequence

import mlx.core as mx
import numpy as np

from .datasets import Example
from .labelmap import LabelMap, allowed_types
from .metrics import score
from .runners import Runner
from .schemes import iob2_labels, iob2_tags, parse_label, write_tag
from .tokenizer import Tokenizer, pad_rows

IGNORE = -100  # a masked-LM target that is not predicted


def token_labels(
    text: str,
    tokens,
    spans: list[tuple[int, int, str]],
    label2id: dict[str, int],
    unannotated: Sequence[str] = (),
) -> np.ndarray:
    """Allowed labels per token, a (tokens, labels) boolean mask: on the first token of each
    word the IOB2 labels the word may take, nothing elsewhere (ignored by the loss). A word
    belongs to the entity that holds its first non-space character; the entity's first word
    gets B-. A span label may allow several types (`GPE|LOC`); a word outside every span is O
    or any type in `unannotated`. With one allowed label per word this is plain cross-entropy."""
    allowed = np.zeros((len(tokens), len(label2id)), dtype=bool)
    outside = [label2id[tag] for tag in iob2_labels(unannotated)]  # O, or an unannotated type
    starts = [s for s, _, _ in spans]
    words = np.flatnonzero(tokens.word_start).tolist()
    owners = []  # (span index, span label) of each word, None outside every span
    for i in words:
        a, b = int(tokens.offsets[i, 0]), int(tokens.offsets[i, 1])
        while a < b and text[a].isspace():
            a += 1
        k = bisect.bisect_right(starts, a) - 1
        owners.append((k, spans[k][2]) if k >= 0 and spans[k][0] <= a < spans[k][1] else None)
    for i, tag in zip(words, iob2_tags(owners)):
        role, label = parse_label(tag)  # a coarse label (`B-GPE|LOC`) allows each of its types
        fine = outside if label is None else [label2id[write_tag(role, t)] for t in allowed_types(label)]
        allowed[i, fine] = True
    return allowed


def token_rows(examples: list[Example], tokenizer: Tokenizer, max_length: int, per_token=None) -> list[tuple]:
    """(ids, per-token values) rows of at most max_length tokens, special tokens included; the
    values of special tokens are all-False rows (`per_token(example, tokens)` gives the rest)."""
    prefix, suffix = tokenizer.special_tokens()
    capacity = max_length - len(prefix) - len(suffix)
    rows = []
    for example in examples:
        tokens = tokenizer.tokenize(example.text)
        values = per_token(example, tokens) if per_token else None
        for start in range(0, max(len(tokens), 1), capacity):
            ids = np.concatenate([prefix, tokens.ids[start : start + capacity], suffix]).astype(np.int32)
            if values is None:
                rows.append((ids, None))
                continue
            none = np.zeros((1, values.shape[1]), dtype=bool)
            rows.append(
                (
                    ids,
                    np.concatenate(
                        [
                            none.repeat(len(prefix), 0),
                            values[start : start + capacity],
                            none.repeat(len(suffix), 0),
                        ]
                    ),
                )
            )
    return rows


class TokenClassification:
    """IOB2 labels on the first token of each word; several allowed labels where the data is
    coarser than the model (marginal likelihood, see `labelmap`). Dev figure: strict micro F1
    through the NER pipeline itself."""

    figure = "dev F1"

    def __init__(self, types: list[str], dev_map: Optional[LabelMap] = None):
        self.labels = iob2_labels(list(types))
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.dev_map = dev_map

    def rows(self, examples: list[Example], tokenizer: Tokenizer, max_length: int) -> list[tuple]:
        def allowed(example, tokens):
            return token_labels(example.text, tokens, example.spans, self.label2id, example.unannotated)

        return token_rows(examples, tokenizer, max_length, allowed)

    def targets(
        self, chosen: list[tuple], ids: np.ndarray, mask: np.ndarray, rng
    ) -> tuple[np.ndarray, np.ndarray]:
        allowed = np.zeros((*ids.shape, len(self.labels)), dtype=bool)
        for r, (_, row_allowed) in enumerate(chosen):
            allowed[r, : len(row_allowed)] = row_allowed
        return ids, allowed

    @staticmethod
    def loss(logits: mx.array, allowed: mx.array) -> mx.array:
        """Mean over labelled tokens of -log P(any allowed label): cross-entropy when one label
        is allowed, the marginal likelihood of the gold type's fine types when several are."""
        logits = logits.astype(mx.float32)
        valid = allowed.any(axis=-1)
        allowed = allowed | ~valid[..., None]  # unlabelled tokens: log-sum over all labels = loss 0
        losses = mx.logsumexp(logits, axis=-1) - mx.logsumexp(mx.where(allowed, logits, -1e9), axis=-1)
        return (losses * valid).sum() / mx.maximum(valid.sum(), 1)

    @staticmethod
    def torch_loss(logits, allowed):
        import torch

        logits = logits.float()
        valid = allowed.any(dim=-1)
        allowed = allowed | ~valid[..., None]
        losses = torch.logsumexp(logits, -1) - torch.logsumexp(logits.masked_fill(~allowed, -1e9), -1)
        return (losses * valid).sum() / valid.sum().clamp(min=1)

    def evaluate(
        self, runner: Runner, tokenizer: Tokenizer, examples: list[Example], max_length: int
    ) -> tuple[float, dict]:
        from .ner import NER

        ner = NER(runner, tokenizer, dict(enumerate(self.labels)), strict_iob2=True, max_length=max_length)
        report = score(ner, examples, self.dev_map)
        return report["strict"]["micro"]["f1"], report

    @staticmethod
    def named(figure: float) -> tuple[str, float]:
        """The dev figure under its name, as written to config.json and the summary."""
        return "f1", figure


class MaskedLM:
    """A share of the tokens (`mask_rate`) hidden and predicted: 80 % replaced by the mask
    token, 10 % by a random token, 10 % left as they are (BERT's recipe; ModernBERT used a 30 %
    rate). Which tokens depends only on the batch's seed, so a resumed run hides the same ones.
    Dev figure: minus the mean loss on the dev text, hidden with a fixed seed."""

    figure = "dev MLM loss"

    def __init__(self, tokenizer: Tokenizer, mask_rate: float):
        if not 0 < mask_rate < 1:
            raise ValueError(
                f"--mask-rate {mask_rate} is not a share of tokens; give a number between 0 and 1 (e.g. 0.3)"
            )
        mask_id = tokenizer.special_ids().get("mask")
        if mask_id is None:
            raise ValueError("the tokenizer has no mask token; masked-LM training needs one")
        self.mask_id, self.vocab_size, self.mask_rate = mask_id, tokenizer.vocab_size, mask_rate
        self.special = {i for i in tokenizer.special_ids().values() if i is not None}
        self.labels = None

    def rows(self, examples: list[Example], tokenizer: Tokenizer, max_length: int) -> list[tuple]:
        return token_rows(examples, tokenizer, max_length)

    def targets(
        self, chosen: list[tuple], ids: np.ndarray, mask: np.ndarray, rng
    ) -> tuple[np.ndarray, np.ndarray]:
        maskable = mask.astype(bool) & ~np.isin(ids, list(self.special))
        hidden = maskable & (rng.random(ids.shape) < self.mask_rate)
        targets = np.where(hidden, ids, IGNORE).astype(np.int32)
        draw = rng.random(ids.shape)
        inputs = np.where(hidden & (draw < 0.8), self.mask_id, ids)
        inputs = np.where(
            hidden & (draw >= 0.8) & (draw < 0.9), rng.integers(0, self.vocab_size, ids.shape), inputs
        )
        return inputs.astype(np.int32), targets

    @staticmethod
    def loss(logits: mx.array, targets: mx.array) -> mx.array:
        logits = logits.astype(mx.float32)
        valid = targets != IGNORE
        losses = (
            mx.logsumexp(logits, axis=-1)
            - mx.take_along_axis(logits, mx.where(valid, targets, 0)[..., None], axis=-1)[..., 0]
        )
        return (losses * valid).sum() / mx.maximum(valid.sum(), 1)

    @staticmethod
    def torch_loss(logits, targets):
        import torch

        losses = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), targets.long().flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return losses / (targets != IGNORE).sum().clamp(min=1)  # 0, not NaN, when a batch hides nothing

    def evaluate(
        self, runner: Runner, tokenizer: Tokenizer, examples: list[Example], max_length: int
    ) -> tuple[float, dict]:
        rows = self.rows(examples, tokenizer, max_length)
        rng = np.random.default_rng(0)
        total, count = 0.0, 0
        for start in range(0, len(rows), 16):
            chosen = rows[start : start + 16]
            ids, mask = pad_rows([ids for ids, _ in chosen], tokenizer.pad_token_id)
            inputs, targets = self.targets(chosen, ids, mask, rng)
            count_here = int((targets != IGNORE).sum())
            total += self.loss(mx.array(runner(inputs, mask)), mx.array(targets)).item() * count_here
            count += count_here
        loss = total / max(count, 1)
        return -loss, {"mlm_loss": loss, "tokens_predicted": count}

    @staticmethod
    def named(figure: float) -> tuple[str, float]:
        return "mlm_loss", -figure
