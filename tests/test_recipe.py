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


def test_swapped_names_replace_each_name_everywhere_with_one_of_its_type():
    import random

    text = "Ada Lovelace wrote to Charles Babbage in London in 1843. Ada Lovelace then left London."
    doc = record(text, "Ada Lovelace", "Charles Babbage")
    doc["entities"] += [record(text, "1843", label="DATE")["entities"][0]]  # not a name: never swapped
    doc["entities"] += [{"start": i, "end": i + 6, "label": "GPE"} for i in (text.index("London"), text.rindex("London"))]
    doc["entities"].append({"start": text.rindex("Ada"), "end": text.rindex("Ada") + 12, "label": "PERSON"})
    names = {"PERSON": ["Grace Hopper", "Alan Turing"], "GPE": ["Paris"]}
    seen = set()
    for seed in range(40):
        out = recipe.swap_names(doc, names, random.Random(seed))
        first, rest = out.split(" wrote to ")
        assert first in ("Ada Lovelace", "Grace Hopper", "Alan Turing")
        assert out.count(first) == 2  # the same replacement at each occurrence
        assert out.count("London") in (0, 2) and out.count("Paris") in (0, 2) and "1843" in out
        seen.add(out)
    assert text in seen and len(seen) > 4  # some documents keep names, most change some


def test_wordnet_glosses_come_out_of_the_debian_package(tmp_path):
    import io
    import tarfile

    data_noun = (
        "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
        "11070000 18 n 02 Einstein 0 Albert_Einstein 0 001 @i 10441453 n 0000 | physicist born in Germany (1879-1955)\n"
        "08899000 15 n 01 Paris 0 001 @i 08524735 n 0000 | the capital and largest city of France\n"
    ).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/share/wordnet/data.noun")
        info.size = len(data_noun)
        tar.addfile(info, io.BytesIO(data_noun))
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"x"), (b"data.tar.xz", archive.getvalue())]
    deb = b"!<arch>\n" + b"".join(
        name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8) + str(len(body)).encode().ljust(10) + b"`\n" + body + b"\n" * (len(body) % 2)
        for name, body in members
    )
    (tmp_path / "wordnet.deb").write_bytes(deb)
    docs = list(recipe.wordnet(tmp_path / "wordnet.deb"))
    assert [d["text"] for d in docs] == ["Paris: the capital and largest city of France", "Einstein, Albert Einstein: physicist born in Germany (1879-1955)"]
    assert all(d["source"] == "wordnet" for d in docs)


def test_training_runs_in_two_phases(tmp_path):
    import argparse
    import json

    args = argparse.Namespace(config=recipe.RECIPE / "config.json", backend="torch", device="cuda", epochs=None)
    base = recipe.train_command(tmp_path, args, "base")
    continued = recipe.train_command(tmp_path, args, "continued")

    def option(command, name):
        return command[command.index(name) + 1]

    assert option(base, "--config") == str(args.config) and "--model" not in base
    assert option(continued, "--model") == str(tmp_path / "base-shipped") and "--config" not in continued
    assert option(base, "-o") == str(tmp_path / "model-base") and option(continued, "-o") == str(tmp_path / "model")
    for command, phase in ((base, "base"), (continued, "continued")):
        settings = json.loads((recipe.RECIPE / f"{phase}.json").read_text())
        assert option(command, "--lr") == str(settings["lr"]) and option(command, "--epochs") == str(settings["epochs"])
        assert option(command, "--train") == str(tmp_path / f"{phase}-packed.jsonl") and option(command, "--device") == "cuda"
    # --epochs shortens the base phase only; an interrupted phase resumes.
    args.epochs = 1
    (tmp_path / "model.state").mkdir()
    (tmp_path / "model.state" / "state.json").write_text("{}")
    assert option(recipe.train_command(tmp_path, args, "base"), "--epochs") == "1"
    assert "--resume" in recipe.train_command(tmp_path, args, "continued")
