"""GLiNER span models against the `gliner` package, run in its own environment on the same tiny
random checkpoints: the words, the encoder's input ids, span probabilities within 1e-4 in
float32 and the same entities, for a ModernBERT and a DeBERTa uni-encoder and a ModernBERT/BERT
bi-encoder, on MLX and PyTorch; long documents through windows of words; conversion; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from anno_mlx import NER, AnnoError
from anno_mlx.cli import main
from anno_mlx.decode import apart
from anno_mlx.testing.tiny_gliner import KINDS, LABELS, REQUEST, reference
from anno_mlx.zeroshot import ZeroShotNER, decode_spans, plan_word_windows, span_context, split_words

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def references(gliner_checkpoint):
    """kind -> (folder, the package's outputs for `REQUEST`), each computed once."""
    made = {}

    def get(kind: str):
        if kind not in made:
            folder = gliner_checkpoint(kind)
            made[kind] = (folder, reference(folder, REQUEST))
        return made[kind]

    return get


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def triples(entities) -> list[tuple[int, int, str]]:
    return [
        (e.start, e.end, e.label) if hasattr(e, "label") else (e["start"], e["end"], e["label"])
        for e in entities
    ]


@pytest.mark.parametrize("backend", ["mlx", "torch"])
@pytest.mark.parametrize("kind", KINDS)
def test_words_inputs_span_probabilities_and_entities_match_the_gliner_package(references, kind, backend):
    folder, ref = references(kind)
    ner = NER.from_pretrained(folder, backend=backend)
    assert isinstance(ner, ZeroShotNER)
    options = ner.options(labels=LABELS)
    compared = 0
    for result in ref["results"]:
        text = result["text"]
        if not result["words"]:  # a blank text: no words, no entities, no model run
            assert ner(text, labels=LABELS) == []
            continue
        prepared = ner.prepare([text], options)
        words = prepared[0].words
        n = len(result["words"])
        assert [(int(a), int(b)) for a, b in words[:n]] == [(w["start"], w["end"]) for w in result["words"]]
        assert [text[a:b] for a, b in words[:n]] == [w["text"] for w in result["words"]]
        if result["truncated"]:  # the package read only max_len words; we read them all
            assert len(words) > n
            continue
        tokens = [t for word in prepared[0].word_tokens for t in word]
        prompt = [] if ner.args.bi_encoder else ner.prompt(tuple(LABELS))
        assert ner.prefix + prompt + tokens + ner.suffix == result["input_ids"]
        probs = ner.forward(prepared, options)[0]
        valid = np.array(result["span_mask"], dtype=bool)
        assert np.abs(probs - sigmoid(np.array(result["logits"], dtype=np.float32)))[valid].max() < TOLERANCE
        for setting, theirs in zip(REQUEST["settings"], result["entities"]):
            ours = ner(
                text,
                labels=LABELS,
                threshold=setting["threshold"],
                nested=not setting["flat_ner"],
                multi_label=setting["multi_label"],
            )
            assert triples(ours) == triples(theirs), setting
            assert all(abs(a.score - b["score"]) < TOLERANCE for a, b in zip(ours, theirs))
            assert all(text[e.start : e.end] == e.text for e in ours)
            compared += len(ours)
    assert compared > 0  # the settings found entities to compare


@pytest.mark.parametrize("kind", KINDS)
def test_the_package_truncated_text_equals_ours_on_the_words_it_read(references, kind):
    folder, ref = references(kind)
    ner = NER.from_pretrained(folder, backend="mlx")
    result = next(r for r in ref["results"] if r["truncated"])
    cut = result["text"][: result["words"][-1]["end"]]
    for setting, theirs in zip(REQUEST["settings"], result["entities"]):
        ours = ner(cut, labels=LABELS, threshold=setting["threshold"], nested=not setting["flat_ner"])
        if not setting["multi_label"]:
            assert triples(ours) == triples(theirs), setting


def long_document(words: int) -> str:
    sentences = [t for t in REQUEST["texts"] if t.strip()]
    out, i = [], 0
    while sum(len(s.split()) for s in out) < words:
        out.append(sentences[i % len(sentences)].replace("1843", str(1800 + i)))
        i += 1
    return "\n".join(out)


@pytest.mark.parametrize("kind,max_length", [("uni-deberta", None), ("bi-modernbert", 96)])
def test_a_document_twenty_times_the_window_is_read_whole_and_each_span_as_in_its_best_window(
    gliner_checkpoint, kind, max_length
):
    ner = NER.from_pretrained(gliner_checkpoint(kind), backend="mlx", labels=LABELS, max_length=max_length)
    options = ner.options()
    text = long_document(1000)
    prepared = ner.prepare([text], options)[0]
    assert len(prepared.windows) >= 20
    entities = ner(text, threshold=0.3)
    assert entities and all(text[e.start : e.end] == e.text for e in entities)
    last_word = {int(end): i for i, (_, end) in enumerate(prepared.words)}
    first_word = {int(start): i for i, (start, _) in enumerate(prepared.words)}
    spans = [(first_word[e.start], last_word[e.end]) for e in entities]
    assert all(b < c for (_, b), (c, _) in zip(spans, spans[1:]))  # in order, none overlapping or repeated
    K = ner.args.max_width
    # Every entity is scored as the model scores it on its best window alone.
    for entity, (first, last) in list(zip(entities, spans))[::7]:
        best, window = -1, None
        for start, end in prepared.windows:
            if start <= first and last < end:
                context = span_context(end - start, K)[first - start, last - first]
                if context > best:
                    best, window = context, (start, end)
        region = text[prepared.words[window[0], 0] : prepared.words[window[1] - 1, 1]]
        alone = ner.prepare([region], options)
        assert len(alone[0].windows) == 1
        probs = ner.forward(alone, options)[0]
        label = LABELS.index(entity.label)
        assert abs(probs[first - window[0], last - first, label] - entity.score) < TOLERANCE


def test_windows_cover_every_span_and_respect_the_token_budget():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 5, size=500).tolist()
    counts[100] = 80  # a word longer than a window gets one of its own
    for capacity, max_words, stride in [(60, None, None), (40, 30, None), (60, None, 3), (60, 25, 10)]:
        windows = plan_word_windows(counts, capacity, max_words, stride, min_overlap=3)
        assert windows[0][0] == 0 and windows[-1][1] == len(counts)
        for (s0, e0), (s1, e1) in zip(windows, windows[1:]):
            assert s0 < s1 <= e0 < e1
        for start, end in windows:
            assert end - start == 1 or sum(counts[start:end]) <= capacity
            assert max_words is None or end - start <= max_words
        for first in range(len(counts) - 3):  # every span of up to 4 words that fits lies inside a window
            if sum(counts[first : first + 4]) <= capacity:
                assert any(start <= first and first + 3 < end for start, end in windows)


def clash(x, y, nested: bool, multi_label: bool) -> bool:
    if (x[0], x[1]) == (y[0], y[1]):
        return not multi_label
    disjoint = x[0] > y[1] or y[0] > x[1]
    inside = (x[0] >= y[0] and x[1] <= y[1]) or (y[0] >= x[0] and y[1] <= x[1])
    return not disjoint if not nested else not (disjoint or inside)


def brute_force(probs, threshold, nested, multi_label):
    """GLiNER's decoding rule written out literally (greedy by score over every candidate)."""
    n, K, C = probs.shape
    cands = [
        (s, s + k, c, float(probs[s, k, c]))
        for s in range(n)
        for k in range(K)
        for c in range(C)
        if s + k < n and probs[s, k, c] > threshold
    ]
    kept = []
    for x in sorted(cands, key=lambda x: -x[3]):
        if not any(clash(x, y, nested, multi_label) for y in kept):
            kept.append(x)
    return sorted(kept, key=lambda x: x[0])


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("multi_label", [False, True])
def test_decoding_follows_the_greedy_rule(nested, multi_label):
    rng = np.random.default_rng(int(nested) * 2 + int(multi_label))
    for _ in range(30):
        probs = rng.random((int(rng.integers(1, 25)), 4, 3)).astype(np.float32)
        assert decode_spans(probs, 0.6, nested, multi_label) == brute_force(probs, 0.6, nested, multi_label)


def test_no_span_runs_across_a_table_cell_or_a_paragraph():
    """Spans that would cross a tab or a blank line are no candidates; the others decode as the
    greedy rule says."""
    text = "Satya Nadella\tMicrosoft\n\nLisa Su"
    words = split_words(text)
    parts = apart(text, words[:, 0], words[:, 1])
    assert parts.tolist() == [2, 3]
    probs = np.zeros((len(words), 4, 1), np.float32)
    probs[0, 2, 0] = 0.99  # "Satya Nadella\tMicrosoft"
    probs[0, 1, 0] = 0.9  # "Satya Nadella"
    probs[2, 2, 0] = 0.95  # "Microsoft\n\nLisa Su"
    probs[3, 1, 0] = 0.8  # "Lisa Su"
    kept = decode_spans(probs, 0.5, False, False, parts)
    assert [(a, b, c, round(p, 5)) for a, b, c, p in kept] == [(0, 1, 0, 0.9), (3, 4, 0, 0.8)]
    crossing = decode_spans(probs, 0.5, False, False)
    assert crossing == brute_force(probs, 0.5, False, False) and crossing[0][:2] == (0, 2)


def test_words_are_split_as_gliner_splits_them():
    text = "São Paulo's state-of-the-art lab (2024-01-05), user_name  e-mail!"
    words = [text[a:b] for a, b in split_words(text)]
    assert words == [
        "São", "Paulo", "'", "s", "state-of-the-art", "lab", "(", "2024-01-05", ")", ",",
        "user_name", "e-mail", "!",
    ]  # fmt: skip


def test_zero_shot_mistakes_are_one_line_errors(gliner_checkpoint, make_checkpoint):
    ner = NER.from_pretrained(gliner_checkpoint("uni-modernbert"), backend="mlx")
    with pytest.raises(AnnoError, match="zero-shot model: name the entity types"):
        ner("Ada Lovelace lived in London.")
    with pytest.raises(AnnoError, match="threshold must be a number from 0 to 1"):
        ner("Ada Lovelace lived in London.", labels="person", threshold=2)
    with pytest.raises(AnnoError, match="labels take"):
        ner("Ada Lovelace lived in London.", labels=["a very long label " * 20], max_length=64)
    fixed = NER.from_pretrained(make_checkpoint(head="token-classification"), backend="mlx")
    with pytest.raises(AnnoError, match="threshold applies to zero-shot"):
        fixed("Ada Lovelace lived in London.", threshold=0.5)
    # Spans keep the labels the span decoder gives them: the name vote is off, and says so.
    assert ner.defaults.one_type_per_name is False
    assert ner.options(labels="person", one_type_per_name=True).one_type_per_name is False


@pytest.mark.parametrize("kind", KINDS)
def test_converted_models_give_the_same_entities(gliner_checkpoint, tmp_path, kind):
    from anno_mlx.convert import convert

    source = gliner_checkpoint(kind)
    text = REQUEST["texts"][0]
    expected = NER.from_pretrained(source, backend="mlx")(text, labels=LABELS, threshold=0.3)
    convert(source, tmp_path / "f32", log=lambda m: None)
    converted = NER.from_pretrained(tmp_path / "f32", backend="torch")(text, labels=LABELS, threshold=0.3)
    assert triples(converted) == triples(expected)
    assert all(abs(a.score - b.score) < TOLERANCE for a, b in zip(converted, expected))
    convert(source, tmp_path / "f16", dtype="float16", log=lambda m: None)
    half = NER.from_pretrained(tmp_path / "f16", backend="mlx")(text, labels=LABELS, threshold=0.3)
    assert triples(half) and all(text[e.start : e.end] == e.text for e in half)
    if kind == "bi-modernbert":
        assert (tmp_path / "f32" / "labels_tokenizer" / "tokenizer.json").is_file()
    if kind == "uni-modernbert":  # its widths are multiples of 32
        convert(source, tmp_path / "q8", quantize=True, q_bits=8, q_group_size=32, log=lambda m: None)
        config = json.loads((tmp_path / "q8" / "config.json").read_text())
        assert config["quantization"]["bits"] == 8
        for backend in ("mlx", "torch"):
            q8 = NER.from_pretrained(tmp_path / "q8", backend=backend)
            found = q8(text, labels=LABELS, threshold=0.3)
            assert found and all(text[e.start : e.end] == e.text for e in found)
            agree = set(triples(found)) & set(triples(expected))
            assert len(agree) >= len(expected) // 2  # 8-bit weights move some scores across the threshold


def test_cli_finds_the_labels_typed_and_eval_prompts_with_the_data_types(gliner_checkpoint, tmp_path, capsys):
    folder = str(gliner_checkpoint("uni-modernbert"))
    text = REQUEST["texts"][0]
    argv = ["ner", "--model", folder, "--backend", "mlx", "--labels", "person,city or country"]
    assert main([*argv, "--threshold", "0.3", "--format", "json", text]) == 0
    found = json.dumps(json.loads(capsys.readouterr().out))
    ner = NER.from_pretrained(folder, backend="mlx")
    expected = ner(text, labels=["person", "city or country"], threshold=0.3)
    assert expected and found.count('"start"') == len(expected)
    assert all(f'"text": {json.dumps(e.text)}' in found for e in expected)
    assert main(["ner", "--model", folder, "--backend", "mlx", text]) != 0
    assert "zero-shot model" in capsys.readouterr().err
    data = tmp_path / "gold.jsonl"
    data.write_text(
        json.dumps({"text": text, "entities": [{"start": 0, "end": 12, "label": "person"}]}) + "\n",
        encoding="utf-8",
    )
    assert main(["eval", "--model", folder, "--backend", "mlx", "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "person" in json.dumps(report)
