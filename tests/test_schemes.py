"""Tag schemes: reading every scheme's prefixes, checking data-file tags, writing IOB2."""

from __future__ import annotations

import random

import pytest

from anno_mlx.schemes import (
    BEGIN,
    INSIDE,
    SCHEMES,
    _roles,
    iob2_labels,
    iob2_tags,
    parse_label,
    tag_spans,
    trained_on_iob2,
    valid_tag,
    write_tag,
)


def test_every_prefix_of_the_table_is_read_with_its_role():
    for prefixes in SCHEMES.values():
        for prefix, role in prefixes.items():
            assert parse_label(f"{prefix}-LOC") == parse_label(f"{prefix.lower()}_LOC") == (role, "LOC")
    assert parse_label("outside") == parse_label("0") == (None, None)
    assert parse_label("B-") == (None, "B-")


def test_a_prefix_keeps_one_role_across_schemes():
    assert _roles({"A": {"X": BEGIN}, "B": {"X": BEGIN, "Y": INSIDE}}) == {"X": BEGIN, "Y": INSIDE}
    with pytest.raises(ValueError, match="prefix X of B has role I"):
        _roles({"A": {"X": BEGIN}, "B": {"X": INSIDE}})


@pytest.mark.parametrize(
    "tag",
    ["O", "B-PER", "I_ORG", "E-LOC", "S-LOC", "L-X", "U-X", "B-GPE|LOC", "PER", "WORK_OF_ART", "b-PER", "o"],
)
def test_tags_a_data_file_may_use(tag):
    assert valid_tag(tag)


@pytest.mark.parametrize(
    "tag", ["", "B-", "I_", "0", "1PER", "-PER", "B-P\u00a0R", "PER|LOC", "PE\u00a0R", "_X"]
)
def test_tags_a_data_file_may_not_use(tag):
    assert not valid_tag(tag)


def test_iob2_labels_and_tags():
    assert iob2_labels(["PER", "LOC"]) == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert write_tag(BEGIN, "PER") == "B-PER" and write_tag(None, None) == "O"
    owners = [None, (0, "PER"), (0, "PER"), (1, "PER"), None, (2, "LOC")]
    assert list(iob2_tags(owners)) == ["O", "B-PER", "I-PER", "B-PER", "O", "B-LOC"]


@pytest.mark.parametrize("seed", range(20))
def test_spans_to_iob2_tags_and_back(seed):
    rng = random.Random(seed)
    length = rng.randint(0, 30)
    cuts = sorted(rng.sample(range(length + 1), min(length + 1, 2 * rng.randint(0, 6))))
    spans = [(a, b, rng.choice(["PER", "LOC"])) for a, b in zip(cuts[::2], cuts[1::2])]
    spans += [(b, b + 1, "PER") for _, b, _ in spans[:1] if b < length]  # an adjacent entity
    spans.sort()
    owners = [None] * length
    for number, (a, b, kind) in enumerate(spans):
        owners[a:b] = [(number, kind)] * (b - a)
    tags = list(iob2_tags(owners))
    assert all(valid_tag(tag) for tag in tags)
    assert tag_spans(tags) == spans


NER_RUN = {"trained": {"epochs": 3, "objective": "ner", "dev_f1": 0.87}}


@pytest.mark.parametrize(
    "provenance,strict",
    [
        (None, False),  # a Hugging Face checkpoint: IOB1 or IOB2, its labels do not say
        ({"format": 1, "source": "dslim/bert-base-NER", "dtype": "float16"}, False),  # converted only
        ({"format": 1, **NER_RUN}, True),
        ({"format": 1, "trained": {"epochs": 1, "dev_f1": 0.72}}, True),  # before objectives were recorded
        ({"format": 1, "trained": {"objective": "mlm"}}, False),
        ({"format": 1, "averaged": [{"source": "a", **NER_RUN}, {"source": "b", **NER_RUN}]}, True),
        ({"format": 1, "averaged": [{"source": "a", **NER_RUN}, {"source": "hub/model"}]}, False),
        ({"format": 1, "averaged": []}, False),
        ("not a block", False),
    ],
)
def test_a_model_anno_mlx_trained_for_ner_reads_its_labels_as_iob2(provenance, strict):
    labels = {"id2label": {"0": "O", "1": "B-PER", "2": "I-PER"}}
    config = labels if provenance is None else {"anno_mlx": provenance, **labels}
    assert trained_on_iob2(config) is strict


def test_an_average_of_averages_and_the_labels_count_too():
    """`average` records a source that is itself an average by its own `averaged` list; and a
    model of ours trained again elsewhere on other tags keeps our block but not IOB2 labels."""
    soup = {"source": "soup", "averaged": [{"source": "a", **NER_RUN}, {"source": "b", **NER_RUN}]}
    nested = {"anno_mlx": {"format": 1, "averaged": [soup, {"source": "tuned", **NER_RUN}]}}
    assert trained_on_iob2({**nested, "id2label": {"0": "O", "1": "B-PER", "2": "I-PER"}})
    with_mlm = {"anno_mlx": {"averaged": [soup, {"source": "mlm", "trained": {"objective": "mlm"}}]}}
    assert not trained_on_iob2({**with_mlm, "id2label": {"0": "O", "1": "B-PER", "2": "I-PER"}})
    for labels in ({"0": "O", "1": "PER"}, {"0": "O", "1": "B-PER", "2": "E-PER"}, {}):
        assert not trained_on_iob2({**nested, "id2label": labels}), labels
