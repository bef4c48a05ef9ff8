"""Dates and numbers, judged blind: where the built-in model and the model before its gold phase
mark the date and number expressions of the recipe's held-out documents differently, two judges
who are not told which model made which marking say which one is right.

No gold set marks dates or numbers, so the recipe's DATE figure is agreement with the teacher,
whose span conventions ("1935 to 1971" as one date or two) it also counts. The judges read
OntoNotes' conventions instead. Their verdicts are in `dates-judged.jsonl`, next to this file.

    python scripts/default_model/judged_dates.py items --work build/default-model --out DIR
        writes DIR/items.md (what the judges read: text, marking A, marking B) and DIR/key.json
        (which model is A), from the shipped model and WORK/continued-shipped
    python scripts/default_model/judged_dates.py count [FILE]
        counts the verdicts (default: dates-judged.jsonl)
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from math import comb
from pathlib import Path

NUMERIC = {"DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL"}
SEED = 20261130
NEAR = 20  # differing spans this close together are one item
CONTEXT = 250  # at most this many characters of text around an item, cut at a sentence's end
VERDICTS = ("A", "B", "both", "neither")
JUDGED = Path(__file__).with_name("dates-judged.jsonl")


def numeric_spans(doc) -> list[tuple[int, int, str]]:
    return sorted({(e.start, e.end, e.label) for e in doc if e.label in NUMERIC})


def items(texts: list[str], shipped: list, before: list) -> list[dict]:
    """One item per cluster of spans the two models mark differently, with the sentence around
    it and each model's date and number spans inside that stretch (offsets into it)."""
    out = []
    for doc, text in enumerate(texts):
        ours, theirs = numeric_spans(shipped[doc]), numeric_spans(before[doc])
        clusters: list[list[int]] = []
        for a, b, _ in sorted(set(ours) ^ set(theirs)):
            if clusters and a <= clusters[-1][1] + NEAR:
                clusters[-1][1] = max(clusters[-1][1], b)
            else:
                clusters.append([a, b])
        for low, high in clusters:
            start = max(
                text.rfind(". ", 0, max(low - 1, 0)) + 2, text.rfind("\n", 0, low) + 1, low - CONTEXT, 0
            )
            found = re.search(r"[.!?](\s|$)", text[high:])
            end = min(high + (found.end() if found else len(text) - high), high + CONTEXT, len(text))
            for a, b, _ in ours + theirs:  # no span of either model is cut by the stretch
                start = a if a < start < b else start
                end = b if a < end < b else end
            while start > 0 and not text[start - 1].isspace():
                start -= 1
            while end < len(text) and not text[end].isspace() and not text[end - 1].isspace():
                end += 1
            inside = lambda spans: [(a - start, b - start, k) for a, b, k in spans if start <= a and b <= end]  # noqa: E731
            out.append({"doc": doc, "start": start, "text": text[start:end], "shipped": inside(ours),
                        "before": inside(theirs)})  # fmt: skip
    return out


def shown(text: str, spans: list) -> str:
    return "; ".join(f"[{text[a:b]}] {k}" for a, b, k in spans) or "(nothing marked)"


def write_items(work: Path, out: Path) -> None:
    from anno_mlx import NER

    texts = [json.loads(line)["text"] for line in (work / "heldout.jsonl").open(encoding="utf-8")]
    shipped = NER.from_pretrained(backend="torch").batch(texts)
    before = NER.from_pretrained(work / "continued-shipped", backend="torch").batch(texts)
    rng = random.Random(SEED)
    found = items(texts, shipped, before)
    rng.shuffle(found)
    key, blind = [], []
    for item in found:
        a_is_before = rng.random() < 0.5
        first, second = (
            (item["before"], item["shipped"]) if a_is_before else (item["shipped"], item["before"])
        )
        if shown(item["text"], first) == shown(item["text"], second):
            continue
        key.append({"id": len(key) + 1, "A": "before" if a_is_before else "shipped", **item})
        blind.append(
            f"### {len(key)}\nText: {item['text']}\nA: {shown(item['text'], first)}\nB: {shown(item['text'], second)}\n"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "items.md").write_text("\n".join(blind), encoding="utf-8")
    (out / "key.json").write_text(json.dumps(key, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{len(key)} items in {out / 'items.md'}")


def winner(row: dict, verdict: str) -> str:
    """The model a verdict favours ("shipped", "before"), or the verdict ("both", "neither")."""
    if verdict not in ("A", "B"):
        return verdict
    other = {"shipped": "before", "before": "shipped"}
    return row["A"] if verdict == "A" else other[row["A"]]


def count(path: Path) -> dict:
    """Each judge's verdicts by model, the items both judges decided alike, and a two-sided sign
    test on those where one model won."""
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    report = {f"judge {j}": dict(Counter(winner(r, r[f"judge_{j}"]) for r in rows)) for j in (1, 2)}
    agreed = [r for r in rows if r["judge_1"] == r["judge_2"]]
    both = Counter(winner(r, r["judge_1"]) for r in agreed)
    n, k = both["shipped"] + both["before"], min(both["shipped"], both["before"])
    report["items"] = len(rows)
    report["judges agree"] = {"items": len(agreed), **dict(both)}
    report["sign test p"] = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    kinds = Counter(
        (winner(r, r["judge_1"]), "with a DATE" if any(s[2] == "DATE" for s in r["shipped"] + r["before_gold"]) else "numbers only")
        for r in agreed
        if r["judge_1"] in ("A", "B")
    )  # fmt: skip
    report["by kind"] = {f"{who}, {kind}": n for (who, kind), n in sorted(kinds.items())}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("items", help="write the blind items and their key")
    make.add_argument("--work", type=Path, required=True, help="the recipe's work folder")
    make.add_argument("--out", type=Path, required=True)
    tally = sub.add_parser("count", help="count the verdicts")
    tally.add_argument("file", type=Path, nargs="?", default=JUDGED)
    args = parser.parse_args()
    if args.command == "items":
        write_items(args.work, args.out)
    else:
        print(json.dumps(count(args.file), indent=1))


if __name__ == "__main__":
    main()
