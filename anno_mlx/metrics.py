"""Entity-level precision, recall and F1 under the usual matching modes.

- `strict`: same span and same type (what seqeval and CoNLL report; equal to seqeval's
  default-mode micro figures on IOB2, tested against seqeval itself);
- `exact`: same span, any type;
- `partial`: overlapping spans, any type;
- `type`: overlapping spans of the same type.

Predictions and gold entities are matched one to one, in order. A prediction counts for its own
type in per-type precision, a gold entity for its type in per-type recall. Macro figures average
the per-type ones over every type seen in gold or predictions.

The strict micro F1 also gets a 95 % bootstrap interval (documents resampled with replacement,
a fixed seed): how far the figure would move on another sample of text like this one, so that
two models' figures are read against the noise of the test set.
"""

from __future__ import annotations

from collections import Counter
from typing import Optional, Sequence

import numpy as np

from .labelmap import LabelMap, rename_predictions

Span = tuple[int, int, str]
MODES = ("strict", "exact", "partial", "type")
INTERVAL_RESAMPLES = 1000


def _matches(mode: str, pred: Span, gold: Span) -> bool:
    same_span = pred[0] == gold[0] and pred[1] == gold[1]
    overlap = pred[0] < gold[1] and gold[0] < pred[1]
    same_type = pred[2] == gold[2]
    return {
        "strict": same_span and same_type,
        "exact": same_span,
        "partial": overlap,
        "type": overlap and same_type,
    }[mode]


def _prf(correct_pred: int, n_pred: int, correct_gold: int, n_gold: int) -> dict[str, float]:
    precision = correct_pred / n_pred if n_pred else 0.0
    recall = correct_gold / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "predicted": n_pred,
        "gold": n_gold,
        "correct": correct_gold,
    }


def evaluate(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """Figures for every mode, and a confusion summary, over parallel lists of documents."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold documents but {len(predicted)} predicted ones")
    report: dict = {}
    for mode in MODES:
        pred_ok, pred_all, gold_ok, gold_all = Counter(), Counter(), Counter(), Counter()
        per_document = []
        for gold_doc, pred_doc in zip(gold, predicted):
            used = [False] * len(gold_doc)
            for p in pred_doc:
                pred_all[p[2]] += 1
                for j, g in enumerate(gold_doc):
                    if not used[j] and _matches(mode, p, g):
                        used[j] = True
                        pred_ok[p[2]] += 1
                        gold_ok[g[2]] += 1
                        break
            for g in gold_doc:
                gold_all[g[2]] += 1
            per_document.append((sum(used), len(pred_doc), len(gold_doc)))
        types = sorted(set(pred_all) | set(gold_all))
        per_type = {t: _prf(pred_ok[t], pred_all[t], gold_ok[t], gold_all[t]) for t in types}
        micro = _prf(
            sum(pred_ok.values()), sum(pred_all.values()), sum(gold_ok.values()), sum(gold_all.values())
        )
        macro = {
            key: (sum(per_type[t][key] for t in types) / len(types) if types else 0.0)
            for key in ("precision", "recall", "f1")
        }
        report[mode] = {"micro": micro, "macro": macro, "per_type": per_type}
        if mode == "strict":
            micro["interval"] = f1_interval(per_document)
    report["confusion"] = confusion(gold, predicted)
    return report


def f1_interval(
    per_document: Sequence[tuple[int, int, int]],
    level: float = 0.95,
    resamples: int = INTERVAL_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of micro F1 from each document's (correct, predicted, gold)
    counts: the documents are drawn again with replacement `resamples` times, one draw at a time
    so that memory stays that of one corpus however large it is."""
    if not per_document:
        return (0.0, 0.0)
    counts = np.asarray(per_document, dtype=np.int64)
    rng = np.random.default_rng(seed)
    totals = np.stack(
        [counts[rng.integers(0, len(counts), len(counts))].sum(axis=0) for _ in range(resamples)]
    )
    correct, found = totals[:, 0], totals[:, 1] + totals[:, 2]
    f1 = np.divide(2 * correct, found, out=np.zeros(resamples), where=found > 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(f1, [tail, 100 - tail])
    return (float(low), float(high))


def predictions(
    ner, examples: Sequence, label_map: Optional[LabelMap | str] = None, progress: bool = False
) -> tuple[list[list[Span]], dict[str, int]]:
    """An NER pipeline's (start, end, type) spans on labelled examples (`datasets.Example`),
    renamed into the data's types with `label_map` (a `LabelMap`, or its text: "conll",
    "PERSON=PER,..."), and how many of each model type were left out because the data cannot
    judge them (see `labelmap`)."""
    if isinstance(label_map, str):
        label_map = LabelMap.parse(label_map)
    documents = ner.batch([e.text for e in examples], progress=progress)
    predicted = [[(p.start, p.end, p.label) for p in doc] for doc in documents]
    if label_map is None:
        return predicted, {}
    return rename_predictions(predicted, label_map, {kind for e in examples for _, _, kind in e.spans})


def score(
    ner, examples: Sequence, label_map: Optional[LabelMap | str] = None, progress: bool = False
) -> dict:
    """Figures of an NER pipeline on labelled examples, through the pipeline itself
    (`predictions`); with `label_map`, the predictions the data cannot judge are counted under
    `not_scored`."""
    predicted, dropped = predictions(ner, examples, label_map, progress)
    report = evaluate([e.spans for e in examples], predicted)
    return report if label_map is None else {**report, "not_scored": dropped}


def confusion(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict:
    """Same span, other type: how often each gold type was called each other type; and the
    gold entities no prediction overlaps (missed), the predictions no gold overlaps (spurious)."""
    wrong_type, missed, spurious = Counter(), Counter(), Counter()
    for gold_doc, pred_doc in zip(gold, predicted):
        spans = {(g[0], g[1]): g[2] for g in gold_doc}
        for p in pred_doc:
            if (p[0], p[1]) in spans and spans[(p[0], p[1])] != p[2]:
                wrong_type[f"{spans[(p[0], p[1])]} -> {p[2]}"] += 1
            if not any(_matches("partial", p, g) for g in gold_doc):
                spurious[p[2]] += 1
        for g in gold_doc:
            if not any(_matches("partial", p, g) for p in pred_doc):
                missed[g[2]] += 1
    return {"wrong_type": dict(wrong_type), "missed": dict(missed), "spurious": dict(spurious)}


def format_report(report: dict) -> str:
    """A table of the strict figures per type, then micro and macro for every mode."""
    strict = report["strict"]
    lines = [f"{'type':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'gold':>8}{'predicted':>11}"]
    for kind, row in strict["per_type"].items():
        lines.append(
            f"{kind:<12}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['gold']:>8}{row['predicted']:>11}"
        )
    lines.append("")
    lines.append(f"{'mode':<10}{'micro P':>9}{'micro R':>9}{'micro F1':>10}{'macro F1':>10}")
    for mode in MODES:
        micro, macro = report[mode]["micro"], report[mode]["macro"]
        lines.append(
            f"{mode:<10}{micro['precision']:>9.4f}{micro['recall']:>9.4f}{micro['f1']:>10.4f}{macro['f1']:>10.4f}"
        )
    low, high = strict["micro"]["interval"]
    lines.append(
        f"strict micro F1, 95 % interval over {INTERVAL_RESAMPLES} resamples of the documents: "
        f"{low:.4f}-{high:.4f}"
    )
    if report.get("not_scored"):
        lines.append("")
        lines.append(
            "not scored (types the data does not annotate): "
            + ", ".join(f"{k} {v}" for k, v in sorted(report["not_scored"].items()))
        )
    c = report["confusion"]
    lines.append("")
    lines.append(
        "wrong type (gold -> predicted): "
        + (", ".join(f"{k} {v}" for k, v in sorted(c["wrong_type"].items())) or "none")
    )
    lines.append("missed: " + (", ".join(f"{k} {v}" for k, v in sorted(c["missed"].items())) or "none"))
    lines.append("spurious: " + (", ".join(f"{k} {v}" for k, v in sorted(c["spurious"].items())) or "none"))
    return "\n".join(lines) + "\n"
