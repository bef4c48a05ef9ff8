"""Where converted models live: the list of local models reads the folder's layout."""

from __future__ import annotations

from anno_mlx.hub import converted_dir, local_models, models_dir


def test_local_models_are_the_complete_converted_folders():
    assert local_models() == []  # no folder yet
    for repo_id in ("org/b-model", "org/a-model"):
        folder = converted_dir(repo_id)
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "tokenizer.json").write_text("{}")
    (converted_dir("org/half") / "config.json").parent.mkdir()
    (converted_dir("org/half") / "config.json").write_text("{}")  # no tokenizer: not listed
    (models_dir() / "notes.txt").write_text("a file, not a model")
    assert local_models() == [converted_dir("org/a-model"), converted_dir("org/b-model")]
