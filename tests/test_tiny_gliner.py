"""The GLiNER reference: tiny models built by the gliner package in its own environment, and that
package's words, logits and entities for them."""

from __future__ import annotations

import math

import pytest

from anno_mlx.testing.tiny_gliner import KINDS, REQUEST, SPECS, reference, reference_python

CASES = [(kind, {}) for kind in KINDS] + [("uni-deberta", {"bin": True, "max_len": 12, "max_width": 3})]


@pytest.mark.parametrize(
    ("kind", "options"), CASES, ids=[f"{k}-{'-'.join(o) or 'default'}" for k, o in CASES]
)
def test_tiny_gliner_folder_and_its_reference(gliner_checkpoint, kind, options):
    folder = gliner_checkpoint(kind, **options)
    files = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    weights = "pytorch_model.bin" if options.get("bin") else "model.safetensors"
    expected = {"gliner_config.json", weights, "tokenizer.json", "tokenizer_config.json"}
    if kind.startswith("bi-"):
        expected |= {"labels_tokenizer/tokenizer.json", "labels_tokenizer/tokenizer_config.json"}
    assert files == expected

    out = reference(folder, REQUEST)
    max_len = options.get("max_len", SPECS[kind]["gliner"]["max_len"])
    max_width = options.get("max_width", SPECS[kind]["gliner"]["max_width"])
    assert (out["max_len"], out["max_width"]) == (max_len, max_width)
    assert len(out["results"]) == len(REQUEST["texts"])
    assert any(entities for result in out["results"] for entities in result["entities"])
    for text, result in zip(REQUEST["texts"], out["results"]):
        assert result["text"] == text
        assert len(result["entities"]) == len(REQUEST["settings"])
        if not text.strip():
            assert result["words"] == [] and result["logits"] == [] and not any(result["entities"])
            continue
        words, logits = result["words"], result["logits"]
        assert result["labels"] == REQUEST["labels"]
        assert all(text[w["start"] : w["end"]] == w["text"] for w in words)
        assert len(words) <= max_len and result["truncated"] == (len(words) == max_len)
        assert [len(logits), len(logits[0]), len(logits[0][0])] == [
            len(words),
            max_width,
            len(REQUEST["labels"]),
        ]
        assert result["span_mask"] == [
            [i + k < len(words) for k in range(max_width)] for i in range(len(words))
        ]
        assert "labels_input_ids" in result if kind.startswith("bi-") else "labels_input_ids" not in result
        assert len(result["input_ids"]) == len(result["attention_mask"])
        starts = {w["start"]: i for i, w in enumerate(words)}
        ends = {w["end"]: i for i, w in enumerate(words)}
        for setting, entities in zip(REQUEST["settings"], result["entities"]):
            for entity in entities:
                assert entity["text"] == text[entity["start"] : entity["end"]]
                first, last = starts[entity["start"]], ends[entity["end"]]
                logit = logits[first][last - first][REQUEST["labels"].index(entity["label"])]
                assert entity["score"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-6)
                assert entity["score"] > setting["threshold"]
    assert out["results"][-1]["truncated"]  # the long text


def test_a_missing_reference_environment_says_how_to_make_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ANNO_MLX_GLINER_PYTHON", str(tmp_path / "no-python"))
    with pytest.raises(RuntimeError, match="run `bash scripts/install.sh`"):
        reference_python()
