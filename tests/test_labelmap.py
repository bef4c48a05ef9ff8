"""Label mappings: scoring a model whose types differ from the data's, and training on coarser
gold types with the marginal likelihood of the fine types."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest

from anno_mlx import AnnoError
from anno_mlx.datasets import Example, read_examples
from anno_mlx.labelmap import LabelMap, coarse_examples, rename_predictions
from anno_mlx.objectives import TokenClassification, token_labels
from anno_mlx.schemes import iob2_labels
from anno_mlx.tokenizer import Tokenizer

ONTONOTES = [
    "PERSON",
    "NORP",
    "FAC",
    "ORG",
    "GPE",
    "LOC",
    "PRODUCT",
    "EVENT",
    "WORK_OF_ART",
    "LAW",
    "LANGUAGE",
    "DATE",
    "TIME",
    "PERCENT",
    "MONEY",
    "QUANTITY",
    "ORDINAL",
    "CARDINAL",
]
NUMERIC = ("DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL")


def test_parse_presets_pairs_and_errors():
    conll = LabelMap.parse("conll")
    assert conll.to_data()["GPE"] == "LOC" and conll.to_data()["NORP"] == "MISC"
    assert conll.to_model("LOC") == ("GPE", "LOC", "FAC")
    assert conll.to_model("PER") == ("PERSON",)
    assert LabelMap.parse("PERSON=PER, GPE=LOC").to_model("ORG") == ("ORG",), (
        "an unnamed type stands for itself"
    )
    with pytest.raises(AnnoError, match="'PERSON' is not MODEL=DATA"):
        LabelMap.parse("PERSON,GPE=LOC")
    with pytest.raises(AnnoError, match="names no pair"):
        LabelMap.parse(" , ")
    with pytest.raises(AnnoError, match="pairs ORG with both corporation and group"):
        LabelMap.parse("ORG=corporation,ORG=group").to_data()


def test_predictions_are_renamed_and_unjudged_types_counted():
    predicted = [[(0, 5, "PERSON"), (9, 14, "GPE"), (20, 26, "DATE"), (30, 35, "NORP")], [(0, 3, "CARDINAL")]]
    kept, dropped = rename_predictions(predicted, LabelMap.parse("conll"), {"PER", "ORG", "LOC"})
    assert kept == [[(0, 5, "PER"), (9, 14, "LOC")], []]
    assert dropped == {"DATE": 1, "NORP": 1, "CARDINAL": 1}, "MISC is not in this data: NORP is not judged"


def test_coarse_examples_allow_the_fine_types_and_free_what_the_data_does_not_mark():
    conll = LabelMap.parse("conll")
    with_misc = [
        Example("Anna went to Oslo .", [(0, 4, "PER"), (13, 17, "LOC")]),
        Example("a Danish film by Nordisk", [(2, 8, "MISC"), (17, 24, "ORG")]),
    ]
    coarse = coarse_examples(with_misc, conll, ONTONOTES)
    assert coarse[0].spans == [(0, 4, "PERSON"), (13, 17, "GPE|LOC|FAC")]
    assert coarse[0].unannotated == NUMERIC
    assert with_misc[0].spans[1] == (13, 17, "LOC"), "the input is not modified"
    # A set that marks no MISC or ORG says nothing about nationalities, events or companies:
    # those are free too.
    without_misc = coarse_examples(with_misc[:1], conll, ONTONOTES)
    assert set(without_misc[0].unannotated) == set(NUMERIC) | {
        "ORG",
        "NORP",
        "EVENT",
        "WORK_OF_ART",
        "PRODUCT",
        "LAW",
        "LANGUAGE",
    }
    with pytest.raises(AnnoError, match="data type LOC maps to PLACE, which the model does not have"):
        coarse_examples(with_misc, LabelMap.parse("PLACE=LOC"), ONTONOTES)


def test_token_labels_allow_sets(make_tokenizer_only):
    tokenizer = make_tokenizer_only
    labels = iob2_labels(["PERSON", "GPE", "LOC", "DATE"])
    label2id = {label: i for i, label in enumerate(labels)}
    text = "Anna went to New York today"
    tokens = tokenizer.tokenize(text)
    allowed = token_labels(text, tokens, [(0, 4, "PERSON"), (13, 21, "GPE|LOC")], label2id, ("DATE",))
    words = {}
    for i in np.flatnonzero(tokens.word_start):
        a, b = tokens.offsets[i]
        words[text[a:b].strip()] = {labels[j] for j in np.flatnonzero(allowed[i])}
    assert words["Anna"] == {"B-PERSON"}
    assert words["New"] == {"B-GPE", "B-LOC"} and words["York"] == {"I-GPE", "I-LOC"}
    assert words["went"] == words["today"] == {"O", "B-DATE", "I-DATE"}
    # Tokens that do not start a word are not labelled.
    assert not allowed[~tokens.word_start].any()


@pytest.fixture(scope="module")
def make_tokenizer_only(tmp_path_factory):
    from anno_mlx.tokenizer import train_bpe

    return Tokenizer(train_bpe(["Anna went to New York today and Oslo"] * 20, 300))


def test_marginal_loss_is_cross_entropy_for_one_label_and_log_sum_for_several():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, 5)).astype(np.float32)

    allowed = np.zeros((2, 6, 5), dtype=bool)
    gold = rng.integers(0, 5, size=(2, 6))
    allowed[np.arange(2)[:, None], np.arange(6)[None], gold] = True
    allowed[0, 0] = False  # an ignored token
    allowed[1, 2, :3] = True  # a token that may be any of labels 0-2
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = np.mean(
        [
            -np.log(np.exp(log_p[b, t][allowed[b, t]]).sum())
            for b in range(2)
            for t in range(6)
            if allowed[b, t].any()
        ]
    )
    assert TokenClassification.loss(mx.array(logits), mx.array(allowed)).item() == pytest.approx(
        expected, rel=1e-5
    )
    one_hot = allowed.copy()
    one_hot[1, 2] = False
    one_hot[1, 2, gold[1, 2]] = True
    ce = np.mean([-log_p[b, t, gold[b, t]] for b in range(2) for t in range(6) if (b, t) != (0, 0)])
    assert TokenClassification.loss(mx.array(logits), mx.array(one_hot)).item() == pytest.approx(ce, rel=1e-5)


def test_encode_rows_carry_masks(make_tokenizer_only, tmp_path):
    path = tmp_path / "coarse.jsonl"
    path.write_text(
        json.dumps(
            {
                "text": "Anna went to Oslo",
                "entities": [{"start": 13, "end": 17, "label": "GPE|LOC"}],
                "unannotated": ["DATE"],
            }
        )
        + "\n"
    )
    example = read_examples(path)[0]
    assert example.spans == [(13, 17, "GPE|LOC")] and example.unannotated == ("DATE",)
    task = TokenClassification(["PERSON", "GPE", "LOC", "DATE"])
    ((ids, allowed),) = task.rows([example], make_tokenizer_only, 64)
    assert allowed.shape == (len(ids), len(task.labels)) and not allowed[0].any() and not allowed[-1].any()
    path.write_text(json.dumps({"text": "x", "unannotated": "DATE"}) + "\n")
    with pytest.raises(AnnoError, match='"unannotated" must be a list of type names'):
        read_examples(path)


def test_score_takes_a_mapping_by_name():
    from types import SimpleNamespace

    from anno_mlx.metrics import score

    class Fixed:
        def batch(self, texts, progress=False):
            return [
                [
                    SimpleNamespace(start=0, end=4, label="PERSON"),
                    SimpleNamespace(start=13, end=17, label="GPE"),
                    SimpleNamespace(start=21, end=27, label="DATE"),
                ]
                for _ in texts
            ]

    examples = [Example("Anna went to Oslo on Monday", [(0, 4, "PER"), (13, 17, "LOC")])]
    report = score(Fixed(), examples, "conll")
    assert report["strict"]["micro"]["f1"] == 1.0 and report["not_scored"] == {"DATE": 1}
    assert score(Fixed(), examples)["strict"]["micro"]["f1"] == 0.0, "without a map the types differ"
