"""What a training run learns from: the entity types it trains (given, the model's, or the
data's), the tokenizer, the objective that turns examples into rows and targets
(`objectives.py`), and the batches of an epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from ..checkpoint import config_labels, read_config
from ..datasets import Example, entity_types_of
from ..errors import AnnoError
from ..labelmap import ANY, LabelMap, allowed_types, coarse_examples
from ..objectives import MaskedLM, TokenClassification
from ..schemes import entity_types
from ..tokenizer import TOKENIZER_FILE, Tokenizer, pad_rows, train_bpe

OBJECTIVES = ("ner", "mlm")
Objective = Union[TokenClassification, MaskedLM]


def training_types(
    examples: list[Example],
    labels: Optional[list[str]],
    label_map: Optional[LabelMap],
    dev_map: Optional[LabelMap],
    model: Optional[str | Path],
    scores_dev: bool,
) -> tuple[list[str], list[Example]]:
    """The entity types an NER model is trained for (`labels`; with a mapping and no labels,
    those of the `model` fine-tuned; else the data's) and the training examples in those types.
    Every way the data or a mapping cannot fit them fails here, before any training:
    `scores_dev` says a mapping must also be able to score the dev data."""
    if (label_map or dev_map) is not None and not labels:
        labels = (
            entity_types(config_labels(read_config(Path(model).expanduser()))) if model is not None else []
        )
        if not labels:
            raise AnnoError(
                "--map needs the model's types: give --labels (or fine-tune a --model that has them)"
            )
    if scores_dev and (dev_map or label_map) is not None:
        (
            dev_map or label_map
        ).to_data()  # a map the dev data cannot be scored with fails now, not after an epoch
    if not labels and any(ANY in kind for e in examples for _, _, kind in e.spans):
        raise AnnoError(
            "the training data has labels that allow several types (A|B); give the model's types with --labels"
        )
    types = labels or entity_types_of(examples)
    if label_map is not None:
        examples = coarse_examples(examples, label_map, types)
    wanted = {t for e in examples for _, _, kind in e.spans for t in allowed_types(kind)}
    unknown = sorted((wanted | {t for e in examples for t in e.unannotated}) - set(types))
    if unknown:
        raise AnnoError(f"the training data has types not in --labels: {', '.join(unknown)}")
    return types, examples


def training_tokenizer(
    model: Optional[str | Path],
    tokenizer_file: Optional[str | Path],
    examples: list[Example],
    vocab_size: int,
    saved: Optional[Path],
) -> Tokenizer:
    """The tokenizer to train with: the one `saved` in a resumed run's state folder, else
    `tokenizer_file`, else the fine-tuned `model`'s, else a BPE of `vocab_size` trained on the
    examples' text."""
    if saved is not None:
        path = saved
    elif tokenizer_file is not None:
        path = Path(tokenizer_file)
    elif model is not None:
        path = Path(model).expanduser() / TOKENIZER_FILE
    else:
        return Tokenizer(train_bpe([e.text for e in examples], vocab_size))
    if not path.is_file():
        raise AnnoError(f"no tokenizer at {path}; give --tokenizer tokenizer.json")
    return Tokenizer.from_file(path)


def make_objective(
    name: str, types: Optional[list[str]], dev_map: Optional[LabelMap], tokenizer: Tokenizer, mask_rate: float
) -> Objective:
    """The objective called `name` ("ner" for `types`, scored on dev data through `dev_map`;
    "mlm" hiding `mask_rate` of the tokens)."""
    try:
        return TokenClassification(types, dev_map) if name == "ner" else MaskedLM(tokenizer, mask_rate)
    except ValueError as err:
        raise AnnoError(str(err)) from None


def batches(
    rows: list[tuple],
    objective: Objective,
    batch_size: int,
    seed: int,
    epoch: int,
    pad_id: int,
    multiple: int = 1,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
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
