"""Rows grouped into model calls: bounds that keep padding cheap, and what the pipeline sends."""

import numpy as np
import pytest

from anno_mlx import NER
from anno_mlx.batching import TOKENS_PER_ROW, length_batches


@pytest.mark.parametrize("seed", range(5))
def test_every_row_once_within_the_bounds(seed):
    rng = np.random.default_rng(seed)
    widths = rng.integers(1, 3000, rng.integers(1, 200)).tolist()
    batches = length_batches(widths, batch_size=8)
    assert sorted(i for batch in batches for i in batch) == list(range(len(widths)))
    for batch in batches:
        widest = max(widths[i] for i in batch)
        assert len(batch) <= 8
        assert len(batch) == 1 or len(batch) * widest <= 8 * TOKENS_PER_ROW
        assert all(2 * widths[i] >= widest for i in batch), "no row padded past twice its length"
    firsts = [widths[batch[0]] for batch in batches]
    assert firsts == sorted(firsts, reverse=True), "longest first"


def test_a_long_document_does_not_pad_short_texts():
    assert length_batches([2000] + [10] * 7, batch_size=8) == [[0], [1, 2, 3, 4, 5, 6, 7]]
    assert length_batches([30] * 20, batch_size=8) == [
        list(range(8)),
        list(range(8, 16)),
        list(range(16, 20)),
    ]


def test_the_pipeline_sends_short_texts_at_their_own_width(converted_model):
    ner = NER.from_pretrained(converted_model, backend="mlx")
    ner.packing = False  # padded batches, as for a model that cannot take packed rows
    widths: list[tuple[int, ...]] = []
    run = ner.runner.__call__

    class Recording(type(ner.runner)):
        def __call__(self, ids, mask, softmax=False, sequence_ids=None):
            widths.append(ids.shape)
            return run(ids, mask, softmax, sequence_ids)

    ner.runner.__class__ = Recording
    long_text = "Ada Lovelace worked with Charles Babbage in London. " * 40
    texts = [long_text] + [f"Marie Curie visited Paris {i}." for i in range(7)]
    together = ner.batch(texts)
    assert len(widths) == 2 and widths[0][0] == 1 and widths[1][0] == 7
    assert widths[1][1] < widths[0][1] // 10
    for batched, text in zip(together, texts):
        alone = ner(text)
        assert [(e.start, e.end, e.label) for e in batched] == [(e.start, e.end, e.label) for e in alone]
        np.testing.assert_allclose([e.score for e in batched], [e.score for e in alone], atol=1e-5)
