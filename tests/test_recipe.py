"""The default model's recipe (scripts/build_default_model.py): the pure steps that shape its
data. (The teacher and the training run need spaCy and hours; MODEL_CARD.md has their numbers.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_default_model", ROOT / "scripts" / "build_default_model.py")
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)


def record(text: str, *names: str, label: str = "PERSON") -> dict:
    return {"text": text, "entities": [{"start": text.index(n), "end": text.index(n) + len(n), "label": label} for n in names]}


def test_packing_keeps_every_entity_on_its_text():
    records = [record(f"Doc {i} says Ada Lovelace met Charles Babbage.", "Ada Lovelace", "Charles Babbage") for i in range(300)]
    packed = recipe.pack(records, seed=1)
    assert 1 < len(packed) < len(records)
    assert all(recipe.words(p["text"]) <= recipe.PACK_WORDS for p in packed)
    names = [p["text"][e["start"] : e["end"]] for p in packed for e in p["entities"]]
    assert sorted(names) == sorted(["Ada Lovelace", "Charles Babbage"] * 300)
    assert sum(p["text"].count("\n\n") + 1 for p in packed) == len(records)


def test_joined_documents_keep_offsets():
    from anno_mlx.tokenizer import Tokenizer, train_bpe

    records = [record(f"In {1900 + i} Marie Curie lived in Paris.", "Marie Curie") for i in range(50)]
    tokenizer = Tokenizer(train_bpe([r["text"] for r in records], 300))
    joined = recipe.joined(records, tokenizer, target=100)
    assert len(joined) > 1
    assert [d["text"][e["start"] : e["end"]] for d in joined for e in d["entities"]] == ["Marie Curie"] * 50


def test_factbook_surnames_in_capitals_become_title_case():
    text = "In 2019 Algerians elected Abdelmadjid TEBBOUNE. TEBBOUNE met Charles DE GAULLE's heirs; the FLN and NATO stayed."
    fixed = recipe.factbook_case(text)
    assert "Abdelmadjid Tebboune" in fixed and "Tebboune met" in fixed and "Gaulle's" in fixed
    assert "FLN" in fixed and "NATO" in fixed  # acronyms after no given name stay
    assert "Charles DE Gaulle's" in fixed  # two-letter particles stay: they could be acronyms (known limit)
    assert len(fixed) == len(text)
