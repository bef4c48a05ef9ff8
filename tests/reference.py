"""The transformers reference, run the way the parity tests need it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers

transformers.utils.logging.disable_progress_bar()

CLASSES = {
    "token-classification": transformers.ModernBertForTokenClassification,
    "masked-lm": transformers.ModernBertForMaskedLM,
    "encoder": transformers.ModernBertModel,
}


def reference_output(
    folder: Path, head: str, ids: np.ndarray, mask: np.ndarray, attn: str = "eager"
) -> np.ndarray:
    model = CLASSES[head].from_pretrained(str(folder), attn_implementation=attn, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask, dtype=torch.long)
        )
    return (out.logits if head != "encoder" else out.last_hidden_state).numpy()


def padded_batch(rng: np.random.Generator, lengths: list[int], vocab: int, pad_id: int):
    """Random ids with right padding, one row per length."""
    width = max(lengths)
    ids = np.full((len(lengths), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(lengths), width), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(0, vocab, size=n)
        mask[row, :n] = 1
    return ids, mask
