"""The default model's recipe (scripts/build_default_model.py): the pure steps that shape its
data. (The teacher and the training run need spaCy and hours; MODEL_CARD.md has their numbers.)"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "build_default_model", ROOT / "scripts" / "build_default_model.py"
)
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)


def record(text: str, *names: str, label: str = "PERSON") -> dict:
    return {
        "text": text,
        "entities": [{"start": text.index(n), "end": text.index(n) + len(n), "label": label} for n in names],
    }


def test_packing_keeps_every_entity_on_its_text():
    records = [
        record(f"Doc {i} says Ada Lovelace met Charles Babbage.", "Ada Lovelace", "Charles Babbage")
        for i in range(300)
    ]
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
    doc["entities"] += [
        {"start": i, "end": i + 6, "label": "GPE"} for i in (text.index("London"), text.rindex("London"))
    ]
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


def wordnet_deb(folder: Path, data_noun: str) -> Path:
    """A .deb (ar archive, data.tar.xz inside) holding WordNet's data.noun, as Debian ships it."""
    import io
    import tarfile

    body = data_noun.encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:xz") as tar:
        info = tarfile.TarInfo("./usr/share/wordnet/data.noun")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    members = [(b"debian-binary", b"2.0\n"), (b"control.tar.xz", b"x"), (b"data.tar.xz", archive.getvalue())]
    deb = b"!<arch>\n" + b"".join(
        name.ljust(16)
        + b"0".ljust(12)
        + b"0".ljust(6)
        + b"0".ljust(6)
        + b"100644".ljust(8)
        + str(len(blob)).encode().ljust(10)
        + b"`\n"
        + blob
        + b"\n" * (len(blob) % 2)
        for name, blob in members
    )
    (folder / "wordnet.deb").write_bytes(deb)
    return folder / "wordnet.deb"


def test_wordnet_glosses_come_out_of_the_debian_package(tmp_path):
    deb = wordnet_deb(
        tmp_path,
        (
            "  1 This software and database is being provided to you, the LICENSEE, by Princeton University\n"
            "11070000 18 n 02 Einstein 0 Albert_Einstein 0 001 @i 10441453 n 0000 | physicist born in Germany (1879-1955)\n"
            "08899000 15 n 01 Paris 0 001 @i 08524735 n 0000 | the capital and largest city of France\n"
        ),
    )
    docs = list(recipe.wordnet(deb))
    assert [d["text"] for d in docs] == [
        "Paris: the capital and largest city of France",
        "Einstein, Albert Einstein: physicist born in Germany (1879-1955)",
    ]
    assert all(d["source"] == "wordnet" for d in docs)


WORDNET_NOUNS = """\
00000100 15 n 01 municipality 0 000 | an urban district having corporate status
00000200 15 n 01 city 0 001 @ 00000100 n 0000 | a large and densely populated urban area
00000300 15 n 01 Tbilisi 0 001 @i 00000200 n 0000 | capital and largest city of Georgia
00000400 18 n 01 philosopher 0 000 | a specialist in philosophy
00000500 18 n 01 Aristotle 0 001 @i 00000400 n 0000 | one of the greatest of the ancient Athenian philosophers
00000600 05 n 01 Gadus 0 000 | type genus of the Gadidae
00000700 13 n 01 saffron 0 000 | dried pungent stigmas of the Old World saffron crocus
00000800 14 n 01 organization 0 000 | a group of people who work together
00000900 14 n 02 Federal_Bureau_of_Investigation 0 FBI 0 001 @ 00000800 n 0000 | a federal law enforcement agency
00001000 18 n 01 Washington 0 001 @i 00000400 n 0000 | first President of the United States
00001100 15 n 01 Washington 0 001 @i 00000200 n 0000 | the capital of the United States
00001200 17 n 01 river 0 000 | a large natural stream of water
00001300 17 n 01 Yenisei 0 001 @i 00001200 n 0000 | a Russian river
00001400 06 n 01 university 0 000 | establishment where a seat of higher learning is housed
00001500 06 n 01 University_of_Chicago 0 001 @i 00001400 n 0000 | a university in Chicago
00001600 18 n 01 deity 0 000 | any supernatural being worshipped as controlling some part of the world
00001700 18 n 01 Leto 0 001 @ 00001600 n 0000 | mother of Apollo and Artemis
00001800 18 n 01 Hutu 0 000 | a member of a Bantu people
00001900 04 n 01 civil_war 0 000 | a war between factions in the same country
00002000 04 n 01 American_Civil_War 0 001 @i 00001900 n 0000 | the war between the Union and the Confederacy
00002100 10 n 01 written_agreement 0 000 | a legal document summarizing an agreement
00002200 10 n 01 Articles_of_Confederation 0 001 @i 00002100 n 0000 | the first constitution of the 13 American states
00002300 10 n 01 epic_poem 0 000 | a long narrative poem
00002400 10 n 01 Iliad 0 001 @i 00002300 n 0000 | a Greek epic poem
00002500 28 n 01 time_period 0 000 | an amount of time
00002600 28 n 01 Neolithic 0 001 @i 00002500 n 0000 | the latest part of the Stone Age
00002700 09 n 01 ABC 0 000 | the elementary stages of any subject
"""


def test_wordnet_gives_names_their_type(tmp_path):
    gazetteer = recipe.Gazetteer(recipe.wordnet_nouns(wordnet_deb(tmp_path, WORDNET_NOUNS)))
    names = (
        "Tbilisi",
        "Aristotle",
        "FBI",
        "Yenisei",
        "Gadus",
        "saffron",
        "Washington",
        "University of Chicago",
        "Saffron",
        "Ur",
    )
    assert [gazetteer.type_of(n) for n in names] == [
        "GPE",
        "PERSON",
        "ORG",
        "LOC",
        None,
        recipe.UNSURE,
        recipe.UNSURE,
        recipe.UNSURE,
        "",
        "",
    ]
    names = ("Leto", "Hutu", "American Civil War", "Articles of Confederation", "Iliad", "Neolithic", "ABC")
    assert [gazetteer.type_of(n) for n in names] == [
        "PERSON",
        "NORP",
        "EVENT",
        "LAW",
        "WORK_OF_ART",
        None,
        recipe.UNSURE,
    ]

    text = "Saffron is a spice. Tbilisi met Aristotle, the FBI and Washington by the Yenisei in 1900 with Gadus at the University of Chicago. Ur too."
    teacher = {
        "Saffron": "ORG",
        "Tbilisi": "PERSON",
        "Aristotle": "ORG",
        "FBI": "GPE",
        "Washington": "PERSON",
        "the Yenisei": "GPE",
        "1900": "DATE",
        "Gadus": "PERSON",
        "the University of Chicago": "ORG",
        "Ur": "ORG",
    }
    spans = [
        {"start": text.index(n), "end": text.index(n) + len(n), "label": kind} for n, kind in teacher.items()
    ]
    fixed = {text[s["start"] : s["end"]]: s["label"] for s in recipe.corrected(text, spans, gazetteer)}
    # WordNet's type where it is sure; a place keeps the teacher's GPE or LOC; no name, no span;
    # a capitalised common noun opening a sentence goes; what WordNet lacks or is unsure of (a
    # person and a city; a building or an institution) stays.
    assert fixed == {
        "Tbilisi": "GPE",
        "Aristotle": "PERSON",
        "FBI": "ORG",
        "Washington": "PERSON",
        "the Yenisei": "GPE",
        "1900": "DATE",
        "the University of Chicago": "ORG",
        "Ur": "ORG",
    }


def test_training_runs_in_two_phases(tmp_path):
    import argparse

    args = argparse.Namespace(
        config=recipe.RECIPE / "config.json", backend="torch", device="cuda", epochs=None
    )
    base = recipe.train_command(tmp_path, args, "base")
    continued = recipe.train_command(tmp_path, args, "continued")

    def option(command, name):
        return command[command.index(name) + 1]

    assert option(base, "--config") == str(args.config) and "--model" not in base
    assert option(continued, "--model") == str(tmp_path / "base-shipped") and "--config" not in continued
    assert option(base, "-o") == str(tmp_path / "model-base") and option(continued, "-o") == str(
        tmp_path / "model"
    )
    for command, phase in ((base, "base"), (continued, "continued")):
        settings = json.loads((recipe.RECIPE / f"{phase}.json").read_text())
        assert option(command, "--lr") == str(settings["lr"]) and option(command, "--epochs") == str(
            settings["epochs"]
        )
        assert (
            option(command, "--train") == str(tmp_path / f"{phase}-packed.jsonl")
            and option(command, "--device") == "cuda"
        )
    # --epochs shortens the base phase only; an interrupted phase resumes.
    args.epochs = 1
    (tmp_path / "model.state").mkdir()
    (tmp_path / "model.state" / "state.json").write_text("{}")
    assert option(recipe.train_command(tmp_path, args, "base"), "--epochs") == "1"
    assert "--resume" in recipe.train_command(tmp_path, args, "continued")


def test_hand_checked_names_become_spans_longest_first():
    text = "The Bay of Algiers lies by Algiers. Algeria's capital is Algiers; Algiersia is no word. Notre-Dame de Paris is in Paris."
    entry = {
        "GPE": ["Algiers", "Algeria", "Paris"],
        "LOC": ["Bay of Algiers"],
        "other": ["Notre-Dame de Paris"],
        "either": ["capital"],
    }
    gold, unscored = recipe.checked_reference(text, entry)
    found = [(text[s:e], kind) for s, e, kind in gold]
    # The longer name holds its words; whole words only ("Algiersia" is not Algiers); a name of
    # another kind (`other`) keeps its "Paris" out; `either` is set apart, not scored.
    assert found == [
        ("Bay of Algiers", "LOC"),
        ("Algiers", "GPE"),
        ("Algeria", "GPE"),
        ("Algiers", "GPE"),
        ("Paris", "GPE"),
    ]
    assert [text[s:e] for s, e, _ in unscored] == ["capital"]
    assert recipe.name_core(text, (0, 18, "LOC")) == (4, 18, "LOC")  # "The " is a convention
    assert text[slice(*recipe.name_core(text, (36, 45, "GPE"))[:2])] == "Algeria"  # so is "'s"


def test_hand_checked_scores_count_what_each_system_gets_right(tmp_path, monkeypatch):
    text = "Tallinn is the capital of Estonia. The city of Tallinn was once Reval."
    checked = tmp_path / "checked.jsonl"
    entry = {
        "document": 0,
        "round": 1,
        "sha256": hashlib.sha256(text.encode()).hexdigest()[:16],
        "GPE": ["Tallinn", "Estonia"],
        "either": ["Reval"],
    }
    checked.write_text(json.dumps(entry) + "\n")
    monkeypatch.setattr(recipe, "CHECKED", checked)
    spans = lambda *names: [(text.index(n), text.index(n) + len(n), kind) for n, kind in names]  # noqa: E731
    held_out = [{"text": text, "entities": []}]
    scores = recipe.checked_scores(
        held_out,
        {
            "right": [spans(("Tallinn", "GPE"), ("Estonia", "GPE")) + [(47, 54, "GPE")]],
            "wrong type": [
                spans(("Tallinn", "ORG"), ("Estonia", "GPE"), ("Reval", "PERSON"))
            ],  # Reval is not scored
            "date": [
                spans(("Tallinn", "GPE"), ("Estonia", "GPE")) + [(47, 54, "GPE"), (0, 7, "DATE")]
            ],  # other types are left out
        },
    )
    assert (scores["documents"], scores["entities"]) == (1, 3)
    assert scores["right"]["f1"] == 1.0 and scores["date"]["f1"] == 1.0
    assert (scores["wrong type"]["correct"], scores["wrong type"]["predicted"]) == (1, 2)
    assert recipe.checked_scores(held_out, {"right": [[]]}, rounds=(2,))["entities"] == 0  # round 1 only
    other = [{"text": text + " ", "entities": []}]
    with pytest.raises(SystemExit, match="not the one that was checked"):
        recipe.checked_scores(other, {"right": [[]]})


# The human-annotated sets: $ANNO_MLX_NER_DATA, else ../shared/ner-data beside the checkout.
GOLD = Path(os.environ.get("ANNO_MLX_NER_DATA", ROOT.parent / "shared" / "ner-data"))


def test_gold_phases_start_from_the_phase_before_and_choose_on_conll_dev(tmp_path):
    import argparse

    args = argparse.Namespace(
        config=recipe.RECIPE / "config.json",
        backend="torch",
        device=None,
        epochs=None,
        gold_data=tmp_path / "gold",
    )
    (tmp_path / "gold" / "conll2003").mkdir(parents=True)
    dev = tmp_path / "gold" / "conll2003" / "dev.txt"
    dev.write_text("not the release\n")
    with pytest.raises(SystemExit, match="not the release the recipe was measured on"):
        recipe.train_command(tmp_path, args, "gold-plain")
    args.gold_data = tmp_path / "missing"
    with pytest.raises(SystemExit, match="conll2003/dev.txt is missing"):
        recipe.train_command(tmp_path, args, "gold-plain")
    if not GOLD.is_dir():
        return  # the checksums are checked above; the commands below need the real files
    args.gold_data = GOLD

    def option(command, name):
        return command[command.index(name) + 1]

    adapt = recipe.train_command(tmp_path, args, "adapt")
    assert option(adapt, "--model") == str(tmp_path / "continued-shipped") and option(adapt, "-o") == str(
        tmp_path / "model-adapted"
    )
    assert option(adapt, "--objective") == "mlm" and "--labels" not in adapt and "--dev-map" not in adapt
    for run, settings in recipe.GOLD_RUNS.items():  # every run from the one masked-LM model
        gold = recipe.train_command(tmp_path, args, run)
        assert (
            option(gold, "--model") == str(tmp_path / "model-adapted")
            and option(gold, "--dev-map") == "conll"
        )
        assert option(gold, "--dev") == str(GOLD / "conll2003" / "dev.txt") and option(gold, "-o") == str(
            tmp_path / f"model-{run}"
        )
        assert option(gold, "--epochs") == str(settings.epochs) and option(gold, "--seed") == str(recipe.SEED)
    for variant in ("gold-no-adapt", "gold-marginal"):
        assert option(recipe.train_command(tmp_path, args, variant), "--model") == str(
            tmp_path / "continued-shipped"
        )


def test_recased_copies_keep_every_offset():
    import random

    records = [
        record(f"Ada Lovelace met Charles Babbage in London {i}.", "Ada Lovelace", "Charles Babbage")
        for i in range(400)
    ]
    records.append(record("İstanbul", "İstanbul"))  # lower-casing İ adds a character: no copy
    copies = recipe.recased(records * 3, random.Random(0))
    assert 0.15 * 1200 < len(copies) < 0.25 * 1200
    assert {c["text"] for c in copies} & {r["text"].lower() for r in records} and {
        c["text"] for c in copies
    } & {r["text"].upper() for r in records}
    for copy in copies:
        assert {copy["text"][e["start"] : e["end"]].lower() for e in copy["entities"]} <= {
            "ada lovelace",
            "charles babbage",
        }
    assert all("i̇" not in c["text"] for c in copies)


def test_paragraphs_keep_their_entities():
    text = "Ada Lovelace wrote notes.\nCharles Babbage built engines.\n\nThey met in London."
    doc = {
        "text": text,
        "entities": [
            {"start": text.index(n), "end": text.index(n) + len(n), "label": k}
            for n, k in (("Ada Lovelace", "PERSON"), ("Charles Babbage", "PERSON"), ("London", "GPE"))
        ],
    }
    parts = list(recipe.paragraphs(doc))
    assert [p["text"] for p in parts] == [
        "Ada Lovelace wrote notes.",
        "Charles Babbage built engines.",
        "They met in London.",
    ]
    assert [[(p["text"][e["start"] : e["end"]], e["label"]) for e in p["entities"]] for p in parts] == [
        [("Ada Lovelace", "PERSON")],
        [("Charles Babbage", "PERSON")],
        [("London", "GPE")],
    ]


def test_only_the_recipes_own_gold_model_ships(tmp_path):
    import argparse

    args = argparse.Namespace(fine_types="teacher", adapt=False, ship_to=tmp_path / "out")
    assert recipe.gold_phase(args) == "gold-no-adapt"
    with pytest.raises(SystemExit, match="ship takes the recipe's own model"):
        recipe.stage_ship(tmp_path, args)
    assert recipe.gold_phase(argparse.Namespace(fine_types="marginal", adapt=True)) == "gold-marginal"
    assert recipe.gold_phase(argparse.Namespace(fine_types="teacher", adapt=True)) == "gold"


def test_written_spacing_moves_every_span_with_its_tokens():
    from anno_mlx.datasets import read_conll

    tokens = [
        ("Moody", "B-ORG"), ("'s", "I-ORG"), ("said", "O"), ('"', "O"), ("Japan", "B-LOC"),
        ("'s", "O"), ("win", "O"), (",", "O"), ("2-1", "O"), (",", "O"), ("was", "O"), ("lucky", "O"),
        ('"', "O"), ("(", "O"), ("AP", "B-ORG"), (")", "O"), ("after", "O"), ("$", "O"), ("5", "O"),
        ("in", "O"), ("fans", "O"), ("'", "O"), ("ca", "O"), ("n't", "O"), ("Paris", "B-LOC"), (",", "O"),
        ("the", "O"), ("$", "O"), ("rose", "O"), ("on", "O"), ("'", "O"), ("Bloody", "B-MISC"),
        ("Sunday", "I-MISC"), ("'", "O"), (",", "O"), ("Bono", "B-PER"), ("says", "O"), ("'", "O"),
        ("Oops", "O"), ("'", "O"), ("and", "O"), ("it", "O"), ("'s", "O"), ("'", "O"), ("odd", "O"),
        ("'", "O"), (".", "O"),
    ]  # fmt: skip
    sentence = read_conll("\n".join(f"{t} {k}" for t, k in tokens), "x")[0]
    start = "Moody's said \"Japan's win, 2-1, was lucky\" (AP) after $5 in fans' can't Paris, "
    paired, glued = recipe.written(sentence), recipe.written(sentence, paired_quotes=False)
    assert paired.text == start + "the $ rose on 'Bloody Sunday', Bono says 'Oops' and it's 'odd'."
    # the plain gold run's spacing: a lone quote joins the word before it, "$" the word after it
    assert glued.text == start + "the $rose on' Bloody Sunday', Bono says' Oops' and it's' odd'."
    for spaced in (paired, glued):
        assert [(spaced.text[a:b], k) for a, b, k in spaced.spans] == [
            ("Moody's", "ORG"),
            ("Japan", "LOC"),
            ("AP", "ORG"),
            ("Paris", "LOC"),
            ("Bloody Sunday", "MISC"),
            ("Bono", "PER"),
        ]


def test_passages_join_consecutive_sentences_and_keep_every_span():
    import random

    from anno_mlx.datasets import Example

    sentences = [
        Example(f"Sentence {i} names Ada Lovelace and Paris .", [(16 + len(str(i)), 28 + len(str(i)), "PER")])
        for i in range(400)
    ]
    assert {s.text[a:b] for s in sentences for a, b, _ in s.spans} == {"Ada Lovelace"}
    joined = recipe.passages(sentences, random.Random(3))
    assert " ".join(p.text for p in joined).split() == " ".join(s.text for s in sentences).split()
    assert [" ".join(p.text[a:b].split()) for p in joined for a, b, _ in p.spans] == ["Ada Lovelace"] * 400
    sizes = [p.text.count("Sentence ") for p in joined]
    assert min(sizes[:-1]) >= 2 and max(sizes) == 10  # PASSAGE_SENTENCES; the last takes what is left
    assert all(recipe.words(p.text) <= recipe.PASSAGE_WORDS for p in joined)
    long = [Example(" ".join(["word"] * 60), []) for _ in range(100)]  # the word cap binds first
    capped = [recipe.words(p.text) for p in recipe.passages(long, random.Random(3))]
    assert sum(capped) == 6000 and max(capped) == 180 and all(n <= recipe.PASSAGE_WORDS for n in capped)
    assert any("\n" in p.text for p in joined) and any(
        "\n" not in p.text and n > 1 for p, n in zip(joined, sizes)
    )
    broken = [p.text for p in joined if re.search(r"\n(?!Sentence )", p.text)]  # lines cut mid-sentence
    assert broken and all(len(line) <= 90 + 12 for text in broken for line in text.split("\n"))


def test_wrapped_text_keeps_every_offset_and_btc_drops_lone_at_signs():
    from anno_mlx.datasets import Example

    text = "Ada Lovelace met Charles Babbage in London\nin 1833, and wrote the first published program."
    spans = [(0, 12, "PER"), (17, 32, "PER"), (36, 42, "LOC")]
    pdf = recipe.wrapped(Example(text, spans), 20)
    assert pdf.text.replace("\n", " ") == text.replace("\n", " ") and pdf.spans == spans
    assert pdf.text.split("\n") == [
        "Ada Lovelace met Charles",
        "Babbage in London",
        "in 1833, and wrote the",
        "first published program.",
    ]
    tweet = Example(
        "@ Ada_L : met @ cbabbage", [(0, 1, "PER"), (2, 7, "PER"), (14, 15, "PER"), (16, 24, "PER")]
    )
    clean = recipe.written(recipe.without_lone_marks(tweet))
    assert clean.text == "@Ada_L: met @cbabbage"
    assert [clean.text[a:b] for a, b, _ in clean.spans] == ["Ada_L", "cbabbage"]


def test_gold_scores_put_every_gold_entity_in_its_place_when_sentences_are_pasted_together():
    """An oracle that reads each line of a text as the sentence it is scores 1.0 on every gold
    set, sentence by sentence and pasted eight to a text: the pasted texts keep every entity
    where its sentence put it (the figures as pasted text measure the model, not the joining)."""
    import argparse
    from types import SimpleNamespace

    if not GOLD.is_dir():
        pytest.skip("the human-annotated sets are not here (set ANNO_MLX_NER_DATA)")
    model_type = {"PER": "PERSON", "ORG": "ORG", "LOC": "GPE", "MISC": "NORP"}
    args = argparse.Namespace(gold_data=GOLD)
    # gold_scores reads each set twice (sentences, then pasted), in GOLD_TESTS' order.
    queue = [e for name in recipe.GOLD_TESTS for _ in range(2) for e in recipe.gold_test(args, name)]
    queue.reverse()

    class Oracle:
        def batch(self, texts, progress=False):
            out = []
            for text in texts:
                found, start = [], 0
                for line in text.split("\n"):
                    sentence = queue.pop()
                    assert line == sentence.text
                    found += [
                        SimpleNamespace(start=start + a, end=start + b, label=model_type[k])
                        for a, b, k in sentence.spans
                    ]
                    start += len(line) + 1
                out.append(found)
            return out

    scores, _ = recipe.gold_scores(args, {"oracle": Oracle()})
    assert len(scores) == 2 * len(recipe.GOLD_TESTS) and not queue
    for name in recipe.GOLD_TESTS:
        sentence, pasted = scores[name], scores[f"{name}, {recipe.PASSAGE_LINES} lines a text"]
        assert sentence["entities"] == pasted["entities"] and pasted["texts"] < sentence["texts"]
        assert sentence["oracle"]["micro"]["f1"] == pasted["oracle"]["micro"]["f1"] == 1.0


def test_lone_at_figures_count_what_a_system_finds_and_score_the_rest():
    import argparse
    from types import SimpleNamespace

    if not GOLD.is_dir():
        pytest.skip("the human-annotated sets are not here (set ANNO_MLX_NER_DATA)")
    args = argparse.Namespace(gold_data=GOLD)
    gold = recipe.gold_test(args, "Broad Twitter Corpus h")
    model_type = {"PER": "PERSON", "ORG": "ORG", "LOC": "GPE"}

    class Copier:  # every gold entity, or every one but the lone "@"
        def __init__(self, keep_at):
            self.keep_at = keep_at

        def batch(self, texts, progress=False):
            assert texts == [e.text for e in gold]
            return [
                [
                    SimpleNamespace(start=a, end=b, label=model_type[k])
                    for a, b, k in e.spans
                    if self.keep_at or e.text[a:b] != "@"
                ]
                for e in gold
            ]

    from anno_mlx.metrics import predictions

    copiers = {"all": Copier(True), "names": Copier(False)}
    figures = recipe.lone_at_scores(gold, {k: predictions(c, gold, "conll")[0] for k, c in copiers.items()})
    assert figures["lone_at_entities"] == 1162  # the card's count, from the release
    assert figures["all"]["lone_at_found"] == 1162 and figures["names"]["lone_at_found"] == 0
    assert figures["all"]["f1_without_lone_at"] == figures["names"]["f1_without_lone_at"] == 1.0


def test_gold_stage_reuses_a_model_only_if_it_learnt_from_the_same_text(tmp_path, monkeypatch):
    import argparse

    for folder in ("continued-shipped", "model-adapted"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.json").write_text("{}")
    sentences = [record(f"Ada Lovelace wrote note {i} .", "Ada Lovelace") for i in range(5)]

    def rows(work, args, run):  # each run's own extra text, the masked-LM text shared
        return sentences, [record(f"Ada Lovelace {run.epochs} {run.signatures} .", "Ada Lovelace")], {}

    monkeypatch.setattr(recipe, "gold_training_records", rows)
    trained, souped = [], []

    def run_phase(work, args, phase, records):
        trained.append(phase)
        (work / f"{phase}-packed.jsonl").write_text(recipe.phase_rows(phase, records))
        (work / recipe.PHASES[phase][1]).mkdir(exist_ok=True)
        (work / recipe.PHASES[phase][1] / "config.json").write_text("{}")

    monkeypatch.setattr(recipe, "run_phase", run_phase)
    monkeypatch.setattr(recipe, "soup", lambda work, args: souped.append(True))
    args = argparse.Namespace(fine_types="teacher", adapt=True)
    with pytest.raises(SystemExit, match="remove it to train the masked-LM epoch again"):
        recipe.stage_gold(tmp_path, args)  # no record of what it learnt from
    (tmp_path / "adapt-packed.jsonl").write_text(
        recipe.phase_rows("adapt", [{"text": r["text"] + " !", "entities": []} for r in sentences])
    )
    with pytest.raises(SystemExit, match="learnt from other text than this gold stage's"):
        recipe.stage_gold(tmp_path, args)
    (tmp_path / "adapt-packed.jsonl").write_text(
        recipe.phase_rows("adapt", [{"text": r["text"], "entities": []} for r in sentences])
    )
    recipe.stage_gold(tmp_path, args)
    assert trained == list(recipe.GOLD_RUNS) and souped == [True]
    recipe.stage_gold(tmp_path, args)  # every run there and learnt from its rows: only the soup again
    assert trained == list(recipe.GOLD_RUNS) and souped == [True, True]
    (tmp_path / "model-gold-contracts.state").mkdir()  # stopped after an epoch: its best so far is there
    (tmp_path / "model-gold-contracts.state" / "state.json").write_text("{}")
    trained.clear()
    recipe.stage_gold(tmp_path, args)
    assert trained == ["gold-contracts"] and len(souped) == 3  # resumed, not taken as done
    (tmp_path / "model-gold-contracts.state" / "state.json").unlink()
    (tmp_path / "gold-signatures-packed.jsonl").write_text("other rows\n")
    with pytest.raises(SystemExit, match="model-gold-signatures learnt from other rows than this recipe's"):
        recipe.stage_gold(tmp_path, args)
    for run in recipe.GOLD_RUNS:
        (tmp_path / recipe.PHASES[run][1] / "config.json").unlink()
    (tmp_path / "model-adapted" / "config.json").unlink()  # none yet: the masked-LM epoch runs first
    trained.clear()
    recipe.stage_gold(tmp_path, args)
    assert trained == ["adapt", *recipe.GOLD_RUNS]
    trained.clear()
    recipe.stage_gold(tmp_path, argparse.Namespace(fine_types="marginal", adapt=True))
    assert trained == ["gold-marginal"] and len(souped) == 4  # an alternative is one run, no soup


def test_the_soup_keeps_a_run_only_if_the_average_does_as_well_on_dev(tmp_path, monkeypatch):
    import argparse

    alone = {
        "gold-plain": 0.870,
        "gold-signatures": 0.874,
        "gold-signatures-numbers": 0.872,
        "gold-contracts": 0.865,
    }
    together = {  # dev F1 of each average the soup tries, in the order it tries them
        ("gold-signatures", "gold-signatures-numbers"): 0.877,
        ("gold-signatures", "gold-signatures-numbers", "gold-plain"): 0.8769,  # lower: not kept
        ("gold-signatures", "gold-signatures-numbers", "gold-contracts"): 0.877,  # as good: kept
    }
    made = {}

    def averaged(work, runs, out):
        made[out.name] = tuple(runs)

    def dev_f1(args, model):
        return together[made[model.name]] if model.name in made else alone[model.name.removeprefix("model-")]

    monkeypatch.setattr(recipe, "averaged", averaged)
    monkeypatch.setattr(recipe, "dev_f1", dev_f1)
    recipe.soup(tmp_path, argparse.Namespace())
    assert made["model-gold"] == ("gold-signatures", "gold-signatures-numbers", "gold-contracts")
    summary = json.loads((tmp_path / "gold-soup.json").read_text())
    assert summary["kept"] == list(made["model-gold"]) and summary["dev_f1"] == 0.877
    assert [step["kept"] for step in summary["steps"]] == [True, False, True]
    assert summary["runs_dev_f1"] == alone


def test_teacher_numbers_join_gold_sentences_only_where_no_gold_span_is():
    text = "Germany beat Brazil 2-1 on Tuesday in the 1996 World Cup before 40,000 fans ."
    gold = record(text, "Germany", "Brazil", label="GPE|LOC|FAC")
    gold["entities"].append({"start": text.index("1996"), "end": text.index(" before"), "label": "EVENT"})

    def span(name, label):
        return {"start": text.index(name), "end": text.index(name) + len(name), "label": label}

    said = [span("Germany", "GPE"), span("2-1", "CARDINAL"), span("Tuesday", "DATE"), span("1996", "DATE")]
    said.append(span("40,000", "CARDINAL"))
    said.append(
        {"start": text.index("2-1"), "end": text.index("2-1") + 1, "label": "CARDINAL"}
    )  # part of a token
    assert recipe.with_teacher_numbers(gold, said) == 3
    assert [(text[e["start"] : e["end"]], e["label"]) for e in gold["entities"]] == [
        ("Germany", "GPE|LOC|FAC"),  # the teacher's GPE is not a number: its fine type is chosen elsewhere
        ("Brazil", "GPE|LOC|FAC"),
        ("2-1", "CARDINAL"),
        ("Tuesday", "DATE"),
        ("1996 World Cup", "EVENT"),  # the teacher's "1996" inside a gold span is left out
        ("40,000", "CARDINAL"),
    ]


def test_signatures_use_the_gold_names_and_mark_no_contact_details():
    import random

    records = [
        record("Ada Lovelace met Charles Babbage .", "Ada Lovelace", "Charles Babbage"),
        record("Lovelace spoke .", "Lovelace"),  # one word: no full name for a signature
        record("Moody 's and Babbage Engines Corp said .", "Moody 's", "Babbage Engines Corp", label="ORG"),
        record("E. Auchard wrote .", "E. Auchard"),
        record(
            "Babbage Engines and ACME and Leicester won .",
            "Babbage Engines",
            "ACME",
            "Leicester",
            label="ORG",
        ),
        record("He flew to Leicester and Paris .", "Leicester", "Paris", label="GPE"),
        record("in Rome .", "Rome", label="GPE|LOC|FAC"),
    ]
    names = recipe.signature_names(records)
    assert names == {  # capitals-only names and clubs named after a place are left out
        "PERSON": ["Ada Lovelace", "Charles Babbage", "E. Auchard"],
        "ORG": ["Babbage Engines", "Babbage Engines Corp"],  # not the tokenized "Moody 's"
        "GPE": ["Leicester", "Paris"],
    }
    signed = recipe.signatures(names, random.Random(0), 200)
    assert len({s["text"] for s in signed}) > 150
    for s in signed:
        found = [(s["text"][e["start"] : e["end"]], e["label"]) for e in s["entities"]]
        assert found[0][1] == "PERSON" and found[0][0] in names["PERSON"]
        suffixes = [""] + [" " + suffix for suffix in recipe.LEGAL_SUFFIXES]
        assert found[1][1] == "ORG" and found[1][0] in {"Babbage Engines" + suffix for suffix in suffixes} | {
            "Babbage Engines Corp"  # a name that ends in a legal form gets no second one
        }
        assert all(k == "GPE" and n in names["GPE"] for n, k in found[2:]) and len(found) <= 3
        assert "unannotated" not in s  # job titles, addresses and phone numbers are taught as no entity
        assert re.search(r"[a-z]\.[a-z]+@babbageengines\.com|www\.babbageengines\.com|\+\d+ \d+", s["text"])
        assert ".." not in s["text"]  # "E. Auchard" writes e.auchard@…
    assert any(s["text"].split("\n")[0] in recipe.ENTITY_FREE_LINES for s in signed)
    assert any(e["label"] == "ORG" and s["text"][e["start"] : e["end"]].endswith(("Inc.", "LLP", "AG"))
               for s in signed for e in s["entities"])  # fmt: skip


def test_contract_passages_mark_names_dates_and_sums_and_no_defined_term():
    import random

    names = {"PERSON": ["Ada Lovelace"], "ORG": ["Babbage Engines", "Difference Bank"], "GPE": ["Delaware"]}
    drafted = recipe.contracts(names, random.Random(0), 300)
    assert len(drafted) == 300 and len({d["text"] for d in drafted}) == 300
    assert recipe.contracts({**names, "GPE": []}, random.Random(0), 300) == []
    suffixes = [""] + [" " + suffix for suffix in recipe.LEGAL_SUFFIXES]
    kinds = set()
    for d in drafted:
        assert "unannotated" not in d  # every type annotated: what no span covers is no entity
        for e in d["entities"]:
            found, kind = d["text"][e["start"] : e["end"]], e["label"]
            kinds.add(kind)
            assert {
                "ORG": found in {org + s for org in names["ORG"] for s in suffixes},
                "PERSON": found == "Ada Lovelace",
                "GPE": found == "Delaware",
                "DATE": re.fullmatch(r"[A-Z][a-z]+ \d{1,2}, \d{4}|\d+ days", found) is not None,
                "MONEY": re.fullmatch(r"\$[\d,]+", found) is not None,
                "PERCENT": re.fullmatch(r"\d\.\d\d%", found) is not None,
            }[kind]
        for term in (*recipe.CONTRACT_ROLES, "Agreement", "Event of Default", "Collateral"):
            for m in re.finditer(re.escape(term), d["text"]):  # a defined term is never inside a span
                assert not any(e["start"] < m.end() and m.start() < e["end"] for e in d["entities"])
    assert kinds == {"ORG", "PERSON", "GPE", "DATE", "MONEY", "PERCENT"}


def test_the_shipped_config_names_no_local_folder(make_checkpoint, tmp_path):
    from anno_mlx.convert import average

    runs = [make_checkpoint(seed=seed) for seed in (1, 2, 3)]
    average(runs[:2], tmp_path / "soup", log=lambda _: None)  # a soup, then averaged again
    average([tmp_path / "soup", runs[2]], tmp_path / "model-gold", log=lambda _: None)
    recipe.ship(tmp_path / "model-gold", tmp_path / "shipped")
    text = (tmp_path / "shipped" / "config.json").read_text()
    assert str(tmp_path) not in text and not any(str(r.parent) in text for r in runs)
    provenance = json.loads(text)["anno_mlx"]
    assert provenance["source"] == "scripts/build_default_model.py (model-gold)"
    assert [run["source"] for run in provenance["averaged"]] == ["soup", runs[2].name]
    assert [run["source"] for run in provenance["averaged"][0]["averaged"]] == [r.name for r in runs[:2]]


def test_the_shipped_tokenizer_reads_a_word_after_a_line_break_as_after_a_space(make_checkpoint, tmp_path):
    """The phases learn from packed documents, where a name nearly always follows a space; the
    shipped model's tokenizer gives a word at a line start (or after a tab or a no-break space)
    the tokens it has after a space, with offsets on the word. A phase's own ship keeps the setting
    its successors trained with."""
    from anno_mlx.tokenizer import Tokenizer

    model = make_checkpoint()
    recipe.ship(model, tmp_path / "phase")
    recipe.ship(model, tmp_path / "shipped", line_starts=True)
    phase, shipped = (Tokenizer.from_folder(tmp_path / name) for name in ("phase", "shipped"))

    def last_word(tokenizer: Tokenizer, text: str) -> tuple[list[int], str]:
        tokens = tokenizer.tokenize(text)
        first = np.flatnonzero(tokens.word_start)[-1]
        kept = np.flatnonzero(tokens.content)
        kept = kept[kept >= first]
        return tokens.ids[kept].tolist(), text[
            tokens.offsets[kept[0], 0] : tokens.offsets[kept[-1], 1]
        ].lstrip()

    spaced = last_word(shipped, "Tokyo Marie")
    assert last_word(phase, "Tokyo Marie") == spaced and spaced[1] == "Marie"
    assert last_word(shipped, "Marie") == last_word(phase, "Marie") == spaced  # a text's first word
    for blank in ("\n", "\r\n", "\n\n", "\t", "\u00a0", " \n"):
        assert last_word(shipped, f"Tokyo{blank}Marie") == spaced, repr(blank)
    assert last_word(phase, "Tokyo\nMarie")[0] != spaced[0]  # what the phases learnt from
    assert last_word(shipped, "Tokyo\n  Marie") == last_word(phase, "Tokyo\n  Marie")  # indented: as before


judged_spec = importlib.util.spec_from_file_location(
    "judged_dates", ROOT / "scripts" / "default_model" / "judged_dates.py"
)
judged = importlib.util.module_from_spec(judged_spec)
judged_spec.loader.exec_module(judged)


def test_blind_date_items_show_each_models_spans_in_whole_sentences():
    """An item per stretch where the two models' date and number spans differ, cut at sentence
    ends and never through a word or a span, offsets into the item's own text."""
    from anno_mlx.entities import Entity

    text = "He was born in 1935. He served from 1951 to 1971 in Lyon. The town had 4,000 people."

    def doc(*spans):
        return [Entity(text[a:b], k, a, b, 0.9) for a, b, k in spans]

    served = (text.index("1951"), text.index("1971") + 4)
    people = (text.index("4,000"), text.index("4,000") + 5, "CARDINAL")
    shipped = doc((15, 19, "DATE"), (*served, "DATE"), people)
    before = doc(
        (15, 19, "DATE"), (served[0], served[0] + 4, "DATE"), (text.index("1971"), served[1], "DATE"), people
    )
    (item,) = judged.items([text], [shipped], [before])
    assert item["text"] == "He served from 1951 to 1971 in Lyon. "
    assert [item["text"][a:b] for a, b, _ in item["shipped"]] == ["1951 to 1971"]
    assert [item["text"][a:b] for a, b, _ in item["before"]] == ["1951", "1971"]


def test_the_stored_verdicts_are_whole_and_their_count_is_consistent():
    rows = [json.loads(line) for line in judged.JUDGED.open(encoding="utf-8")]
    assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        assert r["A"] in ("shipped", "before") and {r["judge_1"], r["judge_2"]} <= set(judged.VERDICTS)
        assert r["shipped"] != r["before_gold"]
        assert all(0 <= a < b <= r["end"] - r["start"] for a, b, _ in r["shipped"] + r["before_gold"])
    report = judged.count(judged.JUDGED)
    for j in (1, 2):
        assert sum(report[f"judge {j}"].values()) == len(rows)
    agreed = report["judges agree"]
    assert agreed["items"] == sum(v for k, v in agreed.items() if k != "items")
    assert sum(report["by kind"].values()) == agreed["shipped"] + agreed["before"]
    assert 0 < report["sign test p"] <= 1
