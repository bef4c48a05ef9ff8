"""Saving a tiny random transformers model with its tokenizer as a Hugging Face checkpoint
folder: the steps every tiny-checkpoint builder shares. Needs the `test` extra."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
HEADS = ("token-classification", "masked-lm", "encoder")
# transformers names a family's classes by its prefix and the head's suffix (BertForMaskedLM).
HEAD_SUFFIXES = dict(zip(HEADS, ("ForTokenClassification", "ForMaskedLM", "Model")))


def transformers_class(prefix: str, head: str) -> type:
    """transformers' class for `head` of the family whose classes start with `prefix`."""
    import transformers

    return getattr(transformers, f"{prefix}{HEAD_SUFFIXES[head]}")


def label_fields(labels: Optional[list[str]] = None) -> dict[str, dict]:
    """`id2label` and `label2id` config values for `labels` (LABELS when None)."""
    labels = labels or LABELS
    return {"id2label": dict(enumerate(labels)), "label2id": {label: i for i, label in enumerate(labels)}}


def random_model(model_class: type, config: Any, seed: int, classifier_std: Optional[float] = None) -> Any:
    """A model of `model_class` with seeded random weights, in eval mode. Biases and norms are
    randomised too, and with `classifier_std` the classifier is drawn again with that spread, so
    that every weight matters to a comparison."""
    import torch

    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                param.add_(torch.randn_like(param) * 0.1)
            if classifier_std is not None and name.startswith("classifier."):
                param.normal_(0.0, classifier_std)
    return model


def save_checkpoint(
    out_dir: str | Path,
    model: Any,
    tokenizer: Any,
    special: Mapping[str, str],
    tokenizer_class: str = "PreTrainedTokenizerFast",
    **settings: Any,
) -> Path:
    """Save `model` and `tokenizer` into `out_dir` as transformers writes them, with a
    `tokenizer_config.json` of `tokenizer_class`, `settings`, the `special` tokens by role
    (`{"pad": "[PAD]"}` -> `pad_token`) and the model's longest input."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save(str(out / "tokenizer.json"))
    tokenizer_config = {
        "tokenizer_class": tokenizer_class,
        **settings,
        **{f"{role}_token": token for role, token in special.items()},
        "model_max_length": model.config.max_position_embeddings,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    return out


def rewrite_config(out_dir: str | Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """`config.json` in `out_dir` changed in place by `edit`, for the forms of it that other
    transformers versions write."""
    path = Path(out_dir) / "config.json"
    saved = json.loads(path.read_text())
    edit(saved)
    path.write_text(json.dumps(saved, indent=2))


def checkpoint_parser(family: str) -> argparse.ArgumentParser:
    """A builder's command line: the folder to write, `--head` and `--seed`."""
    parser = argparse.ArgumentParser(
        description=f"Save a tiny random {family} checkpoint (Hugging Face layout)."
    )
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--head", default="token-classification", choices=HEADS)
    parser.add_argument("--seed", type=int, default=0)
    return parser
