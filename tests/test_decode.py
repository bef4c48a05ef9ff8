"""The decoder on hand-built label sequences: every scheme, every aggregation, exact spans."""

from __future__ import annotations

import numpy as np
import pytest

from anno_mlx.decode import decode, joining_hyphens
from anno_mlx.schemes import entity_types, parse_label
from anno_mlx.tokenizer import Tokens, word_starts

IOB = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
BILOU = ["O", "B-PER", "I-PER", "L-PER", "U-PER", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]
PLAIN = ["O", "PER", "LOC"]


def tokens_of(text: str, pieces: list[tuple[int, int, int]]) -> Tokens:
    """pieces: (start, end, word id) per token."""
    offsets = np.array([(a, b) for a, b, _ in pieces], dtype=np.int64).reshape(-1, 2)
    content, starts = word_starts(text, offsets, np.array([w for _, _, w in pieces]))
    return Tokens(np.zeros(len(pieces), np.int32), offsets, starts, content)


def probs_for(labels: list[str], tags: list[str], confidence: list[float] | None = None) -> np.ndarray:
    """Each token gives `confidence` to its tag and spreads the rest evenly."""
    confidence = confidence or [0.9] * len(tags)
    p = np.zeros((len(tags), len(labels)), np.float32)
    for i, (tag, c) in enumerate(zip(tags, confidence)):
        p[i] = (1 - c) / (len(labels) - 1)
        p[i, labels.index(tag)] = c
    return p


def spans(entities) -> list[tuple[str, str]]:
    return [(e.text, e.label) for e in entities]


TEXT = "Marie Curie met Anna in New York"
# One token per word; byte-level style offsets include the preceding space.
WORDS = [(0, 5, 0), (5, 11, 1), (11, 15, 2), (15, 20, 3), (20, 23, 4), (23, 27, 5), (27, 32, 6)]


SCHEME_CASES = [
    (
        IOB,
        ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"],
        [("Marie Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")],
    ),
    # IOB1: I- opens an entity after O; B- only separates neighbours of one type.
    (
        IOB,
        ["I-PER", "I-PER", "O", "I-PER", "O", "I-LOC", "I-LOC"],
        [("Marie Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")],
    ),
    # Entities of one type side by side on a line are repaired (see below), so these
    # neighbours stand on lines of their own.
    (
        IOB,
        ["I-PER", "B-PER", "O", "O", "O", "I-LOC", "B-LOC"],
        [("Marie", "PER"), ("Curie", "PER"), ("New", "LOC"), ("York", "LOC")],
        "Marie\nCurie met Anna in New\nYork",
    ),
    (
        BIOES,
        ["B-PER", "E-PER", "O", "S-PER", "O", "B-LOC", "E-LOC"],
        [("Marie Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")],
    ),
    # E- closes: a following I- of the same type starts a new entity; S- is always alone.
    (
        BIOES,
        ["B-PER", "E-PER", "I-PER", "S-PER", "S-PER", "O", "S-LOC"],
        [("Marie Curie", "PER"), ("met", "PER"), ("Anna", "PER"), ("in", "PER"), ("York", "LOC")],
        "Marie Curie\nmet\nAnna\nin New York",
    ),
    (
        BILOU,
        ["B-PER", "L-PER", "O", "U-PER", "O", "B-LOC", "L-LOC"],
        [("Marie Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")],
    ),
    # Plain labels: runs of one type; adjacent entities of one type cannot be told apart.
    (
        PLAIN,
        ["PER", "PER", "O", "PER", "O", "LOC", "LOC"],
        [("Marie Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")],
    ),
]


@pytest.mark.parametrize(
    "labels,tags,expected,text", [case if len(case) == 4 else (*case, TEXT) for case in SCHEME_CASES]
)
@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_schemes(labels, tags, expected, text, aggregation):
    id2label = dict(enumerate(labels))
    entities = decode(text, tokens_of(text, WORDS), probs_for(labels, tags), id2label, aggregation)
    assert spans(entities) == expected
    for e in entities:
        assert text[e.start : e.end] == e.text and e.text == e.text.strip()


TEXT2 = "Washington went home"
# "Washington" in three subword tokens, then two one-token words.
SUBWORDS = [(0, 4, 0), (4, 8, 0), (8, 10, 0), (10, 15, 1), (15, 20, 2)]


def test_aggregations_on_a_split_word():
    id2label = dict(enumerate(IOB))
    tags = ["B-PER", "B-LOC", "I-LOC", "O", "O"]
    confidence = [0.5, 0.95, 0.9, 0.9, 0.9]
    probs = probs_for(IOB, tags, confidence)
    tokens = tokens_of(TEXT2, SUBWORDS)
    # simple: token by token, so the word is cut into two entities.
    assert spans(decode(TEXT2, tokens, probs, id2label, "simple")) == [("Wash", "PER"), ("ington", "LOC")]
    # first: the first token labels the word; its score is that token's probability.
    (first,) = decode(TEXT2, tokens, probs, id2label, "first")
    assert (first.text, first.label) == ("Washington", "PER") and first.score == pytest.approx(0.5)
    # max: the most confident token (0.95, B-LOC) decides.
    (best,) = decode(TEXT2, tokens, probs, id2label, "max")
    assert (best.text, best.label) == ("Washington", "LOC") and best.score == pytest.approx(0.95)
    # average: mean probabilities; LOC-ish labels win as B-LOC averages highest.
    (mean,) = decode(TEXT2, tokens, probs, id2label, "average")
    assert mean.text == "Washington"
    assert mean.score == pytest.approx(probs[:3].mean(axis=0).max())


def test_entity_score_is_the_mean_of_its_units():
    id2label = dict(enumerate(IOB))
    probs = probs_for(IOB, ["B-PER", "I-PER", "O", "O", "O", "O", "O"], [0.6, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9])
    (entity,) = decode(TEXT, tokens_of(TEXT, WORDS), probs, id2label, "first")
    assert entity.score == pytest.approx(0.7)


def test_whitespace_tokens_are_transparent_and_spans_trimmed():
    text = "  New\n York \t"
    pieces = [(0, 2, 0), (2, 5, 1), (5, 7, 2), (7, 11, 2), (11, 13, 3)]  # "  ", "New", "\n ", "York", " \t"
    id2label = dict(enumerate(IOB))
    probs = probs_for(IOB, ["O", "B-LOC", "O", "I-LOC", "O"])
    for aggregation in ("simple", "first", "average", "max"):
        (entity,) = decode(text, tokens_of(text, pieces), probs, id2label, aggregation)
        assert (entity.text, entity.start, entity.end) == ("New\n York", 2, 11)


def test_overlapping_token_offsets_never_give_overlapping_entities():
    text = "AB"
    pieces = [(0, 1, 0), (0, 2, 1), (1, 2, 2)]  # a tokenizer may map pieces onto shared characters
    id2label = dict(enumerate(IOB))
    entities = decode(
        text, tokens_of(text, pieces), probs_for(IOB, ["B-PER", "B-LOC", "B-PER"]), id2label, "simple"
    )
    assert all(a.end <= b.start for a, b in zip(entities, entities[1:]))
    assert all(text[e.start : e.end] == e.text for e in entities)


def test_combining_marks_stay_with_their_letter():
    text = "Zoe\u0301 left"
    pieces = [(0, 3, 0), (3, 4, 1), (4, 9, 2)]  # the accent is a token of its own
    id2label = dict(enumerate(IOB))
    (entity,) = decode(text, tokens_of(text, pieces), probs_for(IOB, ["B-PER", "O", "O"]), id2label, "simple")
    assert entity.text == "Zoe\u0301"


@pytest.mark.parametrize(
    "text", ["Sq\u0301rt met", "\u0928\u0930\u0947\u0928 met"]
)  # no precomposed form; Devanagari
def test_a_combining_mark_never_splits_a_word(text):
    """Byte-level BPE makes the accent a word of its own and the letters after it another; under
    word aggregation they stay one word with the letters before, so no entity starts or ends
    between them."""
    first_space = text.index(" ")
    pieces = [(0, 2, 0), (2, 3, 1), (3, first_space, 2), (first_space, len(text), 3)]
    id2label = dict(enumerate(IOB))
    probs = probs_for(IOB, ["B-PER", "O", "B-LOC", "O"], [0.9, 0.5, 0.5, 0.9])
    for aggregation in ("first", "average", "max"):
        assert spans(decode(text, tokens_of(text, pieces), probs, id2label, aggregation)) == [
            (text[:first_space], "PER")
        ]


def test_cjk_characters_are_words_of_their_own():
    text = "東京と大阪"
    pieces = [(i, i + 1, 0) for i in range(5)]  # one pre-tokenizer "word": no spaces in Japanese
    id2label = dict(enumerate(IOB))
    probs = probs_for(IOB, ["B-LOC", "I-LOC", "O", "B-LOC", "I-LOC"])
    assert spans(decode(text, tokens_of(text, pieces), probs, id2label, "first")) == [
        ("東京", "LOC"),
        ("大阪", "LOC"),
    ]


def test_labels_parse():
    assert parse_label("B-PER") == ("B", "PER") and parse_label("I_ORG") == ("I", "ORG")
    assert parse_label("U-LOC") == ("S", "LOC") and parse_label("L-LOC") == ("E", "LOC")
    assert parse_label("O") == (None, None) and parse_label("PERSON") == (None, "PERSON")
    assert entity_types(dict(enumerate(BIOES))) == ["PER", "LOC"]


def test_a_separator_carried_by_the_last_token_is_trimmed():
    text = "rose 40.1%, then Paris:"
    pieces = [(0, 4, 0), (4, 9, 1), (9, 11, 1), (11, 16, 2), (16, 22, 3), (22, 23, 3)]  # "%," is one token
    id2label = dict(enumerate(IOB))
    probs = probs_for(IOB, ["O", "B-LOC", "I-LOC", "O", "B-PER", "I-PER"])
    entities = decode(text, tokens_of(text, pieces), probs, id2label, "simple")
    assert [(e.text, e.start, e.end) for e in entities] == [("40.1%", 5, 10), ("Paris", 17, 22)]
    assert all(text[e.start : e.end] == e.text for e in entities)
    # A span that is nothing but a separator gives no entity.
    assert (
        decode(
            ", x",
            tokens_of(", x", [(0, 1, 0), (1, 3, 1)]),
            probs_for(IOB, ["B-PER", "O"]),
            id2label,
            "simple",
        )
        == []
    )


def probs_from(labels: list[str], rows: list[dict[str, float]]) -> np.ndarray:
    """One row per unit: the given labels' probabilities, the rest spread evenly."""
    p = np.zeros((len(rows), len(labels)), np.float32)
    for i, row in enumerate(rows):
        p[i] = (1 - sum(row.values())) / (len(labels) - len(row))
        for tag, value in row.items():
            p[i, labels.index(tag)] = value
    return p


@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_a_type_change_inside_an_entity_is_resolved_not_split(aggregation):
    id2label = dict(enumerate(IOB))
    outside = {"O": 0.96}
    # "Marie" leans ORG, "Curie" is surely a continuation, of a person: one PER entity, since
    # B-PER·I-PER (0.3·0.3) beats B-ORG·I-ORG (0.6·0.01) and any split with a B- for "Curie".
    labels = IOB + ["B-ORG", "I-ORG"]
    rows = [{"B-ORG": 0.6, "B-PER": 0.3}, {"I-PER": 0.3, "I-LOC": 0.6}] + [outside] * 5
    probs = probs_from(labels, rows)
    (entity,) = decode(TEXT, tokens_of(TEXT, WORDS), probs, dict(enumerate(labels)), aggregation)
    assert (entity.text, entity.label) == ("Marie Curie", "PER")
    assert entity.score == pytest.approx((0.3 + 0.3) / 2)  # the chosen labels' probabilities
    # When two entities are likelier than either joined reading, they stay two.
    rows = [{"B-PER": 0.9}, {"I-LOC": 0.5, "B-LOC": 0.4}] + [outside] * 5
    entities = decode(TEXT, tokens_of(TEXT, WORDS), probs_from(IOB, rows), id2label, aggregation)
    assert spans(entities) == [("Marie", "PER"), ("Curie", "LOC")]
    # Entities around the repaired one keep their most probable labels.
    rows = [
        {"B-PER": 0.9},
        {"I-PER": 0.9},
        outside,
        {"B-ORG": 0.5, "B-PER": 0.4},
        {"I-PER": 0.7},
        {"B-LOC": 0.9},
        {"I-LOC": 0.9},
    ]
    text = "Marie Curie met Anna Smith New York"
    words = [(0, 5, 0), (5, 11, 1), (11, 15, 2), (15, 20, 3), (20, 26, 4), (26, 30, 5), (30, 35, 6)]
    entities = decode(
        text, tokens_of(text, words), probs_from(labels, rows), dict(enumerate(labels)), aggregation
    )
    assert spans(entities) == [("Marie Curie", "PER"), ("Anna Smith", "PER"), ("New York", "LOC")]


@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_a_model_trained_on_iob2_never_begins_an_entity_with_i(aggregation):
    """`O I-PER` begins an entity as IOB1 reads it, which is how a model from elsewhere is read.
    For a model trained on IOB2 tags it is a mistake: the likeliest labelling in which each
    `I-` follows its own entity decides, at a text's start, after `O` and after a tab alike."""
    id2label = dict(enumerate(IOB))
    outside = {"O": 0.96}
    # "Marie" leans outside, "Curie" surely continues a person: B-PER I-PER (0.35 x 0.9) beats
    # O B-PER (0.55 x 0.02); "Anna" is a lone I-PER, "New York" starts the text's last part.
    rows = [{"O": 0.55, "B-PER": 0.35}, {"I-PER": 0.9}, outside, {"I-PER": 0.7, "B-PER": 0.2}, outside,
            outside, {"I-LOC": 0.5, "B-LOC": 0.4}, {"I-LOC": 0.9}]  # fmt: skip
    text = "Marie Curie met Anna in\tNew York"
    words = [
        (0, 5, 0),
        (5, 11, 1),
        (11, 15, 2),
        (15, 20, 3),
        (20, 23, 4),
        (23, 24, 5),
        (24, 27, 6),
        (27, 32, 7),
    ]
    probs = probs_from(IOB, rows)
    tokens = tokens_of(text, words)
    as_iob1 = decode(text, tokens, probs, id2label, aggregation, one_type_per_name=False)
    assert spans(as_iob1) == [("Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")]
    strict = decode(text, tokens, probs, id2label, aggregation, one_type_per_name=False, strict_iob2=True)
    assert spans(strict) == [("Marie Curie", "PER"), ("Anna", "PER"), ("New York", "LOC")]
    assert strict[0].score == pytest.approx((0.35 + 0.9) / 2) and strict[1].score == pytest.approx(0.2)
    # At a text's start too.
    first = decode("Curie met", tokens_of("Curie met", [(0, 5, 0), (5, 9, 1)]),
                   probs_from(IOB, [{"I-PER": 0.6, "B-PER": 0.3}, outside]), id2label, aggregation,
                   strict_iob2=True)  # fmt: skip
    assert [(e.text, e.label, round(e.score, 4)) for e in first] == [("Curie", "PER", 0.3)]


@pytest.mark.parametrize("labels", [IOB, BIOES], ids=["IOB", "BIOES"])
@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_two_entities_of_one_type_are_never_side_by_side_on_a_line(labels, aggregation):
    """ "the" ORG then "Paris Opera House" ORG: a model unsure where a name begins gives two
    entities of one type with only a space between. They become one entity, or the less likely
    one none, as the probabilities say; across a line break, or of two types, they stay two."""
    begin, inside = (("B-LOC", "I-LOC"), ("S-LOC", "E-LOC"))[labels is BIOES]
    id2label = dict(enumerate(labels))
    outside = {"O": 0.96}
    head = [{"B-PER": 0.9}, {"I-PER" if labels is IOB else "E-PER": 0.9}, outside, outside, outside]

    def found(new: dict, york: dict, text: str = TEXT) -> list:
        probs = probs_from(labels, head + [new, york])
        return spans(
            decode(text, tokens_of(text, WORDS), probs, id2label, aggregation, one_type_per_name=False)
        )

    # Dropping "New" (0.38 x 0.5) beats joining (0.6 x 0.15).
    assert found({begin: 0.6, "O": 0.38}, {begin: 0.5, inside: 0.15})[1:] == [("York", "LOC")]
    # Joining (0.6 x 0.4; BIOES: B-LOC E-LOC, 0.3 x 0.4) beats dropping either.
    new = {"B-LOC": 0.6, "O": 0.3} if labels is IOB else {"S-LOC": 0.45, "B-LOC": 0.3, "O": 0.2}
    assert found(new, {begin: 0.45, inside: 0.4})[1:] == [("New York", "LOC")]
    # On two lines both stay.
    on_two_lines = "Marie Curie met Anna in New\nYork"
    assert found({begin: 0.6, "O": 0.38}, {begin: 0.5, inside: 0.15}, on_two_lines)[1:] == [
        ("New", "LOC"),
        ("York", "LOC"),
    ]
    # A person beside a place is no repair.
    probs = probs_from(labels, [{"B-PER": 0.9}, {begin: 0.9}] + [outside] * 5)
    entities = decode(TEXT, tokens_of(TEXT, WORDS), probs, id2label, aggregation)
    assert spans(entities) == [("Marie", "PER"), ("Curie", "LOC")]


def test_bioes_type_changes_are_resolved_too():
    id2label = dict(enumerate(BIOES))
    rows = [{"B-LOC": 0.5, "B-PER": 0.45}, {"E-PER": 0.9}] + [{"O": 0.96}] * 5
    (entity,) = decode(TEXT, tokens_of(TEXT, WORDS), probs_from(BIOES, rows), id2label, "first")
    assert (entity.text, entity.label) == ("Marie Curie", "PER")


@pytest.mark.parametrize(
    "separator,apart",
    [
        ("\t", True),
        (" \t ", True),
        ("\n\n", True),
        ("\r\n\r\n", True),
        ("\n \n", True),
        ("\n", False),
        (" ", False),
    ],
)
@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_an_entity_never_runs_across_a_tab_or_a_blank_line(separator, apart, aggregation):
    """A table's cells and a document's paragraphs are decoded apart, each as its own text; a
    single line break, as in text copied from a PDF, does not stop an entity."""
    text = f"Satya Nadella{separator}Microsoft"
    gap = text.index("Microsoft")
    pieces = [(0, 5, 0), (5, 13, 1), (13, gap, 2), (gap, len(text), 3)]  # the gap: whitespace only
    id2label = dict(enumerate(IOB))
    probs = probs_for(IOB, ["B-PER", "I-PER", "O", "I-PER"])
    entities = decode(text, tokens_of(text, pieces), probs, id2label, aggregation)
    expected = [("Satya Nadella", "PER"), ("Microsoft", "PER")] if apart else [(text, "PER")]
    assert spans(entities) == expected
    assert all(text[e.start : e.end] == e.text for e in entities)


def test_the_type_repair_never_joins_two_cells():
    """`B-PER I-PER | I-LOC` across a tab: each cell keeps its own type, where within one cell
    the repair would make one entity of one type."""
    id2label = dict(enumerate(IOB))
    rows = [{"B-PER": 0.5, "B-LOC": 0.4}, {"I-PER": 0.5, "I-LOC": 0.4}, {"O": 0.9}, {"I-LOC": 0.9}]
    probs = probs_from(IOB, rows)
    for separator, expected in (
        ("\t", [("Satya Nadella", "PER"), ("Microsoft", "LOC")]),
        ("\n", [("Satya Nadella\nMicrosoft", "LOC")]),
    ):
        text = f"Satya Nadella{separator}Microsoft"
        pieces = [(0, 5, 0), (5, 13, 1), (13, 14, 2), (14, len(text), 3)]
        assert spans(decode(text, tokens_of(text, pieces), probs, id2label, "first")) == expected


APART = ("\t", "\n\n", "\r\n\r\n", "\n \n", "\r\r", "\u2029", "\f", "\n\u2028")
TOGETHER = (" ", " ", " ", "\n", " \n ", "\r\n", "\u2028")


@pytest.mark.parametrize("strict", [False, True], ids=["as read", "IOB2-trained"])
@pytest.mark.parametrize("labels", [IOB, BIOES, BILOU, PLAIN], ids=["IOB", "BIOES", "BILOU", "plain"])
@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_a_text_decodes_as_its_cells_and_paragraphs_each_alone(labels, aggregation, strict):
    """Random texts of words and blanks, random probabilities: the entities of the whole text are
    those of each part between tabs, page breaks and blank lines decoded as a text of its own,
    offsets moved, and each is cut from the text exactly."""
    rng = np.random.default_rng(7)
    id2label = dict(enumerate(labels))
    for _ in range(40):
        words = [str(w) for w in rng.choice(["Ada", "Lovelace", "met", "New", "York", ",", "Par", "is"], 9)]
        gaps = [str(rng.choice(APART if rng.random() < 0.3 else TOGETHER)) for _ in words[1:]]
        text, parts, pieces = "", [[]], []  # pieces: (start, end, word id) per token
        for i, word in enumerate(words):
            if i:
                if gaps[i - 1] in APART:
                    parts.append([])
                if gaps[i - 1] == " " and rng.random() < 0.5:  # byte-level: the space rides on the word
                    text += " "
                    start = len(text) - 1
                else:
                    pieces.append((len(text), len(text) + len(gaps[i - 1]), len(pieces)))
                    text += gaps[i - 1]
                    start = len(text)
            else:
                start = 0
            text += word
            parts[-1].append(len(pieces))
            joined = pieces and rng.random() < 0.3  # one pre-tokenizer word with the token before
            pieces.append((start, len(text), len(pieces) - 1 if joined else len(pieces)))
        probs = rng.dirichlet(np.full(len(labels), 0.3), size=len(pieces)).astype(np.float32)
        whole = decode(text, tokens_of(text, pieces), probs, id2label, aggregation, False, strict)
        assert all(text[e.start : e.end] == e.text for e in whole)
        named = decode(text, tokens_of(text, pieces), probs, id2label, aggregation, strict_iob2=strict)
        assert [(e.start, e.end) for e in named] == [(e.start, e.end) for e in whole]
        alone = []
        for part in parts:
            first, last = part[0], part[-1] + 1
            offset = pieces[first][0]
            own = [(a - offset, b - offset, w) for a, b, w in pieces[first:last]]
            piece_text = text[offset : pieces[last - 1][1]]
            piece_tokens = tokens_of(piece_text, own)
            for e in decode(
                piece_text, piece_tokens, probs[first:last], id2label, aggregation, False, strict
            ):
                alone.append((e.text, e.label, e.start + offset, e.end + offset, round(e.score, 5)))
        assert [(e.text, e.label, e.start, e.end, round(e.score, 5)) for e in whole] == alone, repr(text)


HYPHENED = "Chiang Kai-shek saw anti-Soviet and Paris-based Ada - Lovelace"
# One token per word; "-" is a word of its own, as a byte-level pre-tokenizer splits it.
HYPHEN_PIECES = [
    (0, 6, 0), (6, 10, 1), (10, 11, 2), (11, 15, 3), (15, 19, 4),  # Chiang Kai - shek saw
    (19, 24, 5), (24, 25, 6), (25, 31, 7), (31, 35, 8),  # anti - Soviet and
    (35, 41, 9), (41, 42, 10), (42, 47, 11),  # Paris - based
    (47, 51, 12), (51, 53, 13), (53, 62, 14),  # Ada - Lovelace (spaced: no word inside)
]  # fmt: skip


@pytest.mark.parametrize(
    "labels,names", [(IOB, ("B-PER", "I-PER", "B-LOC", "I-LOC")), (BIOES, ("B-PER", "I-PER", "B-LOC", "I-LOC")),
                     (PLAIN, ("PER", "PER", "LOC", "LOC"))], ids=["IOB", "BIOES", "plain"]
)  # fmt: skip
@pytest.mark.parametrize("aggregation", ["simple", "first", "average", "max"])
def test_no_entity_begins_or_ends_at_a_hyphen_inside_a_word(labels, names, aggregation):
    """ "Chiang Kai-" and "-Soviet" are never entities: where the most probable labels put an
    entity's edge on a hyphen that joins two parts of a word, the likeliest labelling that
    keeps it off decides: here the whole word, or the part before it. A hyphen that ends a part before a word
    ("Paris" of "Paris-based") and a spaced dash are edges like any other."""
    b_per, i_per, b_loc, i_loc = names
    outside = {"O": 0.96}
    id2label = dict(enumerate(labels))
    tokens = tokens_of(HYPHENED, HYPHEN_PIECES)

    def rows(hyphen: dict, shek: dict, soviet_hyphen: dict) -> list[dict]:
        return [
            {b_per: 0.9}, {i_per: 0.9}, hyphen, shek, outside,  # Chiang Kai - shek saw
            outside, soviet_hyphen, {i_loc: 0.6, "O": 0.3}, outside,  # anti - Soviet and
            {b_loc: 0.9}, outside, outside,  # Paris - based
            {b_per: 0.9}, {i_per: 0.9}, {i_per: 0.9},  # Ada - Lovelace
        ]  # fmt: skip

    # "-" leans inside the name and "shek" outside it: the name takes the whole word
    # (0.6 x 0.35 against 0.3 x 0.55); "-" of "anti-Soviet" leans to begin a place, which
    # leaves "Soviet" to begin it.
    probs = probs_from(labels, rows({i_per: 0.6, "O": 0.3}, {"O": 0.55, i_per: 0.35}, {b_loc: 0.6, "O": 0.3}))
    found = spans(decode(HYPHENED, tokens, probs, id2label, aggregation, one_type_per_name=False))
    assert found == [
        ("Chiang Kai-shek", "PER"),
        ("Soviet", "LOC"),
        ("Paris", "LOC"),
        ("Ada - Lovelace", "PER"),
    ]
    # "shek" surely outside: the name stops before the hyphen.
    probs = probs_from(labels, rows({i_per: 0.5, "O": 0.45}, {"O": 0.9}, {b_loc: 0.6, "O": 0.3}))
    found = spans(decode(HYPHENED, tokens, probs, id2label, aggregation, one_type_per_name=False))
    assert found[0] == ("Chiang Kai", "PER")
    # Without the hyphens' pull the labels stand as the model gave them.
    probs = probs_from(labels, rows({i_per: 0.9}, {i_per: 0.9}, outside))
    found = spans(decode(HYPHENED, tokens, probs, id2label, aggregation, one_type_per_name=False))
    assert found[:2] == [("Chiang Kai-shek", "PER"), ("Soviet", "LOC")]


def test_which_hyphens_join_a_word():
    """A hyphen (or U+2010, U+2011) touched by a letter or digit on each side, its neighbouring
    units touching it: not a spaced dash, an en dash, a hyphen at a word's edge or one inside a
    longer unit."""
    text = "Guinea-Bissau 1996-08-30 Paris - London 1935\u20131971 pre- x\u2010ray e-mail"
    units = [
        (0, 6), (6, 7), (7, 13), (14, 18), (18, 19), (19, 21), (21, 22), (22, 24),  # Guinea-Bissau 1996-08-30
        (25, 30), (31, 32), (33, 39), (40, 44), (44, 45), (45, 49),  # Paris - London 1935–1971
        (50, 53), (53, 54), (55, 56), (56, 57), (57, 60), (61, 67),  # pre- x‐ray e-mail (one unit)
    ]  # fmt: skip
    begins, ends = np.array([a for a, _ in units]), np.array([b for _, b in units])
    assert [text[begins[i] : ends[i]] for i in joining_hyphens(text, begins, ends)] == [
        "-",
        "-",
        "-",
        "\u2010",
    ]
    assert joining_hyphens(text, begins, ends).tolist() == [1, 4, 6, 17]


@pytest.mark.parametrize("scheme", ["IOB", "BIOES"])
@pytest.mark.parametrize("aggregation", ["simple", "first"])
def test_a_name_has_one_type_throughout_a_text(scheme, aggregation):
    """ "Magna" read as ORG twice (once in capitals) and as PER once is ORG in all three places;
    the one that changed scores the mean over the three of ORG's most probable label. "Lyon",
    met once, keeps its own label (ORG at 0.4) though PER's labels sum to more. Another name
    keeps its type, spans never move, and `one_type_per_name=False` leaves each place its own
    reading."""
    single = {"IOB": ("B-ORG", "B-PER", "I-PER"), "BIOES": ("S-ORG", "S-PER", "B-PER")}[scheme]
    labels = {"IOB": IOB, "BIOES": BIOES}[scheme]
    labels = [label.replace("LOC", "ORG") for label in labels]
    id2label = dict(enumerate(labels))
    text = "Magna bid . MAGNA rose . Magna said . Ada Lovelace met Ada in Lyon"
    pieces, at = [], 0
    for i, word in enumerate(text.split(" ")):
        pieces.append((at, at + len(word), i))
        at += len(word) + 1
    org, per = single[0], single[1]
    first, last = ("B-PER", "I-PER") if scheme == "IOB" else ("B-PER", "E-PER")
    tags = [org, "O", "O", org, "O", "O", per, "O", "O", first, last, "O", per, "O", org]
    confidence = [0.8, 0.9, 0.9, 0.6, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.7, 0.9, 0.4]
    probs = probs_for(labels, tags, confidence)
    probs[-1] = 0.0
    probs[-1, [labels.index(label) for label in single]] = [0.4, 0.3, 0.3]
    tokens = tokens_of(text, pieces)
    named = decode(text, tokens, probs, id2label, aggregation)
    assert spans(named) == [
        ("Magna", "ORG"),
        ("MAGNA", "ORG"),
        ("Magna", "ORG"),
        ("Ada Lovelace", "PER"),
        ("Ada", "PER"),
        ("Lyon", "ORG"),
    ]
    spread = (1 - 0.5) / (len(labels) - 1)  # what the PER reading leaves each other label
    assert named[2].score == pytest.approx((0.8 + 0.6 + spread) / 3, abs=1e-6)
    assert [e.score for i, e in enumerate(named) if i != 2] == pytest.approx([0.8, 0.6, 0.9, 0.7, 0.4])
    alone = decode(text, tokens, probs, id2label, aggregation, one_type_per_name=False)
    assert [e.label for e in alone] == ["ORG", "ORG", "PER", "PER", "PER", "ORG"]
    assert [(e.start, e.end, e.score) for i, e in enumerate(alone) if i != 2] == [
        (e.start, e.end, e.score) for i, e in enumerate(named) if i != 2
    ]
    assert (alone[2].start, alone[2].end) == (named[2].start, named[2].end)
