"""Entity metrics: strict micro figures equal seqeval's; the other modes on hand-computed cases;
the bootstrap interval against resampling the documents by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from anno_mlx.metrics import evaluate, format_report
from anno_mlx.schemes import tag_spans

TYPES = ["PER", "ORG", "LOC"]
TAGS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]


def random_sequences(rng: random.Random, n: int) -> list[list[str]]:
    return [[rng.choice(TAGS) for _ in range(rng.randint(0, 25))] for _ in range(n)]


@pytest.mark.parametrize("seed", range(40))
def test_strict_micro_equals_seqeval_on_random_iob2(seed):
    rng = random.Random(seed)
    gold = random_sequences(rng, rng.randint(1, 30))
    # Predictions: the gold sequence with some tags changed, so there is real overlap.
    pred = [[rng.choice(TAGS) if rng.random() < 0.3 else tag for tag in seq] for seq in gold]
    report = evaluate([tag_spans(g) for g in gold], [tag_spans(p) for p in pred])["strict"]["micro"]
    assert report["precision"] == pytest.approx(precision_score(gold, pred), abs=1e-12)
    assert report["recall"] == pytest.approx(recall_score(gold, pred), abs=1e-12)
    assert report["f1"] == pytest.approx(f1_score(gold, pred), abs=1e-12)


def test_modes_on_hand_computed_cases():
    gold = [[(0, 5, "PER"), (10, 15, "LOC"), (20, 30, "ORG")]]
    pred = [[(0, 5, "PER"), (10, 15, "ORG"), (22, 28, "ORG"), (40, 45, "LOC")]]
    report = evaluate(gold, pred)
    # strict: only (0,5,PER) -> P 1/4, R 1/3
    assert report["strict"]["micro"]["precision"] == pytest.approx(1 / 4)
    assert report["strict"]["micro"]["recall"] == pytest.approx(1 / 3)
    # exact: (0,5) and (10,15) -> P 2/4, R 2/3
    assert report["exact"]["micro"]["precision"] == pytest.approx(2 / 4)
    assert report["exact"]["micro"]["recall"] == pytest.approx(2 / 3)
    # partial: also (22,28) overlaps (20,30) -> P 3/4, R 3/3
    assert report["partial"]["micro"]["precision"] == pytest.approx(3 / 4)
    assert report["partial"]["micro"]["recall"] == pytest.approx(1.0)
    # type: overlap with same type: PER and ORG -> P 2/4, R 2/3
    assert report["type"]["micro"]["precision"] == pytest.approx(2 / 4)
    assert report["type"]["micro"]["recall"] == pytest.approx(2 / 3)
    # per type (strict): PER 1/1 and 1/1; LOC 0/1 predicted, 0/1 gold; ORG 0/2, 0/1
    per_type = report["strict"]["per_type"]
    assert per_type["PER"]["f1"] == 1.0 and per_type["LOC"]["f1"] == 0.0 and per_type["ORG"]["predicted"] == 2
    assert report["strict"]["macro"]["f1"] == pytest.approx(1 / 3)
    assert report["confusion"] == {"wrong_type": {"LOC -> ORG": 1}, "missed": {}, "spurious": {"LOC": 1}}
    assert "wrong type (gold -> predicted): LOC -> ORG 1" in format_report(report)


def test_one_prediction_matches_one_gold_entity():
    gold = [[(0, 10, "PER")]]
    pred = [[(0, 4, "PER"), (5, 10, "PER")]]
    partial = evaluate(gold, pred)["partial"]["micro"]
    assert partial["precision"] == 0.5 and partial["recall"] == 1.0


def test_empty_inputs_give_zeros():
    report = evaluate([[]], [[]])
    assert report["strict"]["micro"]["f1"] == 0.0 and report["strict"]["per_type"] == {}


def noisy_documents(seed: int, n: int) -> tuple[list, list]:
    rng = random.Random(seed)
    gold = random_sequences(rng, n)
    pred = [[rng.choice(TAGS) if rng.random() < 0.3 else tag for tag in seq] for seq in gold]
    return [tag_spans(g) for g in gold], [tag_spans(p) for p in pred]


def test_the_f1_interval_is_what_resampling_the_documents_gives():
    gold, pred = noisy_documents(0, 300)
    micro = evaluate(gold, pred)["strict"]["micro"]
    low, high = micro["interval"]
    assert low < micro["f1"] < high
    # The same bootstrap the slow way: whole reports of documents drawn again, another generator.
    rng = random.Random(1)
    f1 = []
    for _ in range(400):
        draw = [rng.randrange(len(gold)) for _ in gold]
        f1.append(evaluate([gold[i] for i in draw], [pred[i] for i in draw])["strict"]["micro"]["f1"])
    assert low == pytest.approx(np.percentile(f1, 2.5), abs=0.015)
    assert high == pytest.approx(np.percentile(f1, 97.5), abs=0.015)
    assert f"{low:.4f}-{high:.4f}" in format_report(evaluate(gold, pred))


def test_the_f1_interval_narrows_with_more_text_and_vanishes_on_identical_documents():
    gold, pred = noisy_documents(2, 400)
    wide = evaluate(gold[:40], pred[:40])["strict"]["micro"]["interval"]
    narrow = evaluate(gold, pred)["strict"]["micro"]["interval"]
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    document = next(i for i, (g, p) in enumerate(zip(gold, pred)) if set(g) & set(p) and set(g) != set(p))
    same = evaluate([gold[document]] * 50, [pred[document]] * 50)["strict"]["micro"]
    assert 0 < same["f1"] < 1
    assert same["interval"] == pytest.approx((same["f1"], same["f1"]))
