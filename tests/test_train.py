"""Training in MLX and PyTorch: a tiny model learns a synthetic task, resumes exactly, and
fine-tunes from a converted masked-LM checkpoint; `eval` and `train` through the CLI."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from conftest import put_in_hub_cache
from mlx.utils import tree_flatten
from synthetic import write_conll, write_jsonl

from anno_mlx import NER, AnnoError
from anno_mlx.checkpoint import config_labels, read_config, read_weights, training_model
from anno_mlx.cli import main
from anno_mlx.datasets import Example, read_examples
from anno_mlx.labelmap import LabelMap
from anno_mlx.metrics import evaluate
from anno_mlx.tokenizer import Tokenizer, pad_rows
from anno_mlx.train import TrainSettings, train
from anno_mlx.training.settings import FRESH_DEFAULTS

FRESH = dict(
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    local_attention=16,
    global_attn_every_n_layers=2,
    max_position_embeddings=128,
)
DROPOUT = dict(embedding_dropout=0.1, attention_dropout=0.1, mlp_dropout=0.1, classifier_dropout=0.1)
FAST = TrainSettings(epochs=3, batch_size=16, learning_rate=3e-3, vocab_size=400, seed=7)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    config = folder / "config.json"
    config.write_text(json.dumps(FRESH))
    (folder / "dropout.json").write_text(json.dumps({**FRESH, **DROPOUT}))
    return {
        "dropout_config": folder / "dropout.json",
        "train": write_conll(folder / "train.conll", 400, seed=1),
        "dev": write_conll(folder / "dev.conll", 80, seed=2),
        "train_jsonl": write_jsonl(folder / "train.jsonl", 400, seed=1),
        "dev_jsonl": write_jsonl(folder / "dev.jsonl", 80, seed=2),
        "config": config,
    }


BACKENDS = ["mlx", "torch"]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize(
    "backend, device",
    [
        ("mlx", "cpu"),
        ("torch", "cpu"),
        pytest.param("torch", "cuda", marks=pytest.mark.skipif(not _cuda(), reason="needs an NVIDIA GPU")),
    ],
)
def test_tiny_model_from_scratch_learns_the_task(data, tmp_path, backend, device):
    summary = train(
        data["train"],
        tmp_path / "out",
        config=data["config"],
        dev_file=data["dev"],
        settings=FAST,
        backend=backend,
        device=device,
        log=lambda m: None,
    )
    assert summary["best"]["f1"] >= 0.9
    # The output is a normal model folder: the NER pipeline loads it and scores the same.
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "O", "1": "B-LOC", "2": "I-LOC", "3": "B-PER", "4": "I-PER"}
    assert config["label2id"]["B-PER"] == 3 and config["hidden_size"] == 64
    ner = NER.from_pretrained(tmp_path / "out")
    examples = read_examples(data["dev"])
    predicted = [[(e.start, e.end, e.label) for e in doc] for doc in ner.batch([e.text for e in examples])]
    reloaded = evaluate([e.spans for e in examples], predicted)["strict"]["micro"]["f1"]
    assert reloaded == pytest.approx(summary["best"]["f1"], abs=1e-9)
    assert {e.label for e in ner("Greta Jensen moved to Buenos Aires last year .")} <= {"PER", "LOC"}
    assert not (tmp_path / "out.state").exists(), "the training state is removed once training ends"


@pytest.mark.parametrize("backend", BACKENDS)
def test_resumed_training_equals_uninterrupted(data, tmp_path, backend):
    # With dropout: its masks must come out the same after a resume too.
    run = dict(
        config=data["dropout_config"],
        dev_file=data["dev_jsonl"],
        settings=FAST,
        backend=backend,
        device="cpu",
        log=lambda m: None,
    )
    whole = train(data["train_jsonl"], tmp_path / "whole", **run)

    def interrupt_after_two(epoch, summary):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data["train_jsonl"], tmp_path / "cut", on_epoch_end=interrupt_after_two, **run)
    assert (tmp_path / "cut.state" / "state.json").is_file()
    other = "mlx" if backend == "torch" else "torch"
    with pytest.raises(AnnoError, match=f"written by the {backend} backend; resume with --backend {backend}"):
        train(data["train_jsonl"], tmp_path / "cut", resume=True, **{**run, "backend": other})
    resumed = train(data["train_jsonl"], tmp_path / "cut", resume=True, **run)
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-6)
    assert resumed["dev"]["strict"]["micro"] == whole["dev"]["strict"]["micro"]
    assert resumed["best"] == whole["best"]
    a, b = read_weights(tmp_path / "whole"), read_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(np.array(a[key]), np.array(b[key]), atol=1e-6)


def test_fine_tuning_starts_from_the_converted_masked_lm_encoder(data, make_checkpoint, tmp_path):
    src = make_checkpoint(head="masked-lm", hidden_size=32, intermediate_size=48, max_position_embeddings=256)
    assert main(["convert", str(src), "-o", str(tmp_path / "mlm")]) == 0
    tokenizer = Tokenizer.from_folder(tmp_path / "mlm")
    model, _ = training_model(tmp_path / "mlm", None, tokenizer, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    loaded = read_weights(tmp_path / "mlm")
    params = dict(tree_flatten(model.parameters()))
    for key, value in loaded.items():
        if key.startswith(("model.", "head.")):
            np.testing.assert_array_equal(np.array(params[key]), np.array(value))
    assert params["classifier.weight"].shape == (5, 32)
    settings = TrainSettings(epochs=1, batch_size=32, learning_rate=1e-3, seed=0)
    summary = train(
        data["train"],
        tmp_path / "tuned",
        model=tmp_path / "mlm",
        dev_file=data["dev"],
        settings=settings,
        log=lambda m: None,
    )
    assert 0.0 <= summary["best"]["f1"] <= 1.0
    tuned = NER.from_pretrained(tmp_path / "tuned")
    assert tuned.entity_types == ["LOC", "PER"] and tuned.strict_iob2  # taught IOB2 tags


def test_fine_tuning_a_hub_id_converts_it_on_first_use(data, make_checkpoint, tmp_path, isolated_home):
    src = make_checkpoint(head="masked-lm", hidden_size=32, intermediate_size=48, max_position_embeddings=256)
    put_in_hub_cache(src, "someone/tiny-mlm", isolated_home / "hub")
    settings = TrainSettings(epochs=1, batch_size=32, learning_rate=1e-3, seed=0)
    train(data["train"], tmp_path / "tuned", model="someone/tiny-mlm", settings=settings, log=lambda m: None)
    assert NER.from_pretrained(tmp_path / "tuned").entity_types == ["LOC", "PER"]
    assert read_config(tmp_path / "tuned")["hidden_size"] == 32


def test_a_classifier_is_kept_only_for_the_same_labels(converted_model):
    """A token-classification base keeps its classifier when trained for its own labels; other
    labels, or a masked-LM objective, get a new head and keep the encoder."""
    tokenizer = Tokenizer.from_folder(converted_model)
    own = [label for _, label in sorted(config_labels(read_config(converted_model)).items())]
    stored = read_weights(converted_model)
    for labels in (own, ["O", "B-X", "I-X"], None):
        model, config = training_model(converted_model, None, tokenizer, labels)
        params = dict(tree_flatten(model.parameters()))
        assert all(v.dtype == mx.float32 for v in params.values())
        np.testing.assert_array_equal(
            np.array(params["model.embeddings.tok_embeddings.weight"]),
            np.array(stored["model.embeddings.tok_embeddings.weight"].astype(mx.float32)),
        )
        if labels is None:
            assert config["architectures"] == ["ModernBertForMaskedLM"] and "id2label" not in config
            continue
        kept = np.array_equal(np.array(params["classifier.weight"]), np.array(stored["classifier.weight"]))
        assert kept == (labels == own)
        assert params["classifier.weight"].shape[0] == len(labels)


def test_train_and_eval_commands(data, tmp_path, capsys):
    argv = [
        "train",
        "--config",
        str(data["config"]),
        "--train",
        str(data["train"]),
        "--dev",
        str(data["dev"]),
        "-o",
        str(tmp_path / "cli"),
        "--epochs",
        "3",
        "--lr",
        "3e-3",
        "--vocab-size",
        "400",
        "--seed",
        "7",
    ]
    assert main(argv) == 0
    assert "dev F1" in capsys.readouterr().out
    assert main(argv) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["eval", "--model", str(tmp_path / "cli"), "--data", str(data["dev"]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["strict"]["micro"]["f1"] >= 0.9 and set(report) == {
        "strict",
        "exact",
        "partial",
        "type",
        "confusion",
    }
    assert main(["eval", "--model", str(tmp_path / "cli"), "--data", str(data["dev"])]) == 0
    table = capsys.readouterr().out
    assert "strict" in table and "PER" in table and "missed:" in table


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_only_while_training(data, tmp_path, backend):
    """Dropout from the config is active in the training steps and off in the saved model."""
    settings = TrainSettings(epochs=1, batch_size=16, learning_rate=3e-3, vocab_size=400, seed=7)
    train(
        data["train"],
        tmp_path / "out",
        config=data["dropout_config"],
        settings=settings,
        backend=backend,
        device="cpu",
        log=lambda m: None,
    )
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert {k: config[k] for k in DROPOUT} == DROPOUT
    ner = NER.from_pretrained(tmp_path / "out", backend=backend, device="cpu")
    ids = np.array(ner.tokenizer.tokenize("Greta Jensen moved to Buenos Aires last year .").ids)[None]
    net = ner.model
    if backend == "mlx":
        import mlx.core as mx

        run = lambda: np.array(net(mx.array(ids)))  # noqa: E731
    else:
        import torch

        run = lambda: net(torch.from_numpy(ids)).detach().numpy()  # noqa: E731
    inference = run()
    np.testing.assert_array_equal(inference, run())
    net.train()
    assert not np.allclose(run(), run()), "training mode draws dropout masks"
    net.eval()
    np.testing.assert_array_equal(inference, run())


def test_training_errors(data, tmp_path):
    with pytest.raises(AnnoError, match="exactly one of --model"):
        train(data["train"], tmp_path / "x", settings=FAST)
    with pytest.raises(AnnoError, match="nothing to resume"):
        train(data["train"], tmp_path / "x", config=data["config"], settings=FAST, resume=True)
    with pytest.raises(AnnoError, match="types not in --labels: PER"):
        train(data["train"], tmp_path / "x", config=data["config"], labels=["LOC"], settings=FAST)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**FRESH, "mlp_dropout": 1.0}))
    with pytest.raises(AnnoError, match=r"mlp_dropout 1.0 is not a dropout rate in \[0, 1\)"):
        train(data["train"], tmp_path / "x", config=bad, settings=FAST)


COARSE = dict(labels=["PERSON", "CITY", "REGION"], label_map=LabelMap.parse("PERSON=PER,CITY=LOC,REGION=LOC"))


@pytest.mark.parametrize(
    "labels", [{}, COARSE], ids=["one label per word", "coarse labels (marginal likelihood)"]
)
def test_both_backends_take_the_same_steps(data, tmp_path, labels):
    """The PyTorch step mirrors the MLX one: same schedule, clipping and AdamW, same weights after an epoch."""
    settings = TrainSettings(epochs=1, batch_size=16, learning_rate=3e-3, vocab_size=400, seed=7)
    outs = {}
    for backend in BACKENDS:
        summary = train(
            data["train"],
            tmp_path / backend,
            config=data["config"],
            settings=settings,
            backend=backend,
            device="cpu",
            log=lambda m: None,
            **labels,
        )
        outs[backend] = summary["loss"], read_weights(tmp_path / backend)
    assert outs["mlx"][0] == pytest.approx(outs["torch"][0], rel=1e-4)
    for key, value in outs["mlx"][1].items():
        np.testing.assert_allclose(np.array(value), np.array(outs["torch"][1][key]), atol=2e-4)


def test_coarse_gold_types_train_fine_ones_and_score_through_the_map(data, tmp_path, capsys):
    """Data that marks LOC trains a model whose types are CITY and REGION (either is allowed
    inside a LOC span: marginal likelihood), and the dev data is scored in its own types."""
    summary = train(
        data["train"],
        tmp_path / "fine",
        config=data["config"],
        dev_file=data["dev"],
        settings=FAST,
        log=lambda m: None,
        **COARSE,
    )
    assert summary["best"]["f1"] >= 0.9
    ner = NER.from_pretrained(tmp_path / "fine")
    assert ner.entity_types == ["PERSON", "CITY", "REGION"]
    found = {e.label for e in ner("Greta Jensen moved to Buenos Aires last year .")}
    assert "PERSON" in found and found - {"PERSON"} <= {"CITY", "REGION"}

    # eval --map: the same figure from the command line, and types the data lacks are not scored.
    def evaluate(mapping: str) -> dict:
        assert (
            main(
                [
                    "eval",
                    "--model",
                    str(tmp_path / "fine"),
                    "--data",
                    str(data["dev"]),
                    "--map",
                    mapping,
                    "--json",
                ]
            )
            == 0
        )
        return json.loads(capsys.readouterr().out)

    report = evaluate("PERSON=PER,CITY=LOC,REGION=LOC")
    assert report["strict"]["micro"]["f1"] == pytest.approx(summary["best"]["f1"], abs=1e-9)
    report = evaluate("PERSON=PER")
    # CITY and REGION now map to nothing the data marks: left out and counted, never scored as LOC.
    assert report["strict"]["per_type"]["LOC"]["predicted"] == 0 and report["not_scored"]
    assert set(report["not_scored"]) <= {"CITY", "REGION"}
    assert (
        main(["eval", "--model", str(tmp_path / "fine"), "--data", str(data["dev"]), "--map", "PERSON"]) == 2
    )
    assert "is not MODEL=DATA" in capsys.readouterr().err


def test_a_fresh_model_trains_with_default_settings(data, tmp_path):
    """No learning rate or epochs given: a fresh model gets settings that train it."""
    summary = train(
        data["train"],
        tmp_path / "out",
        config=data["config"],
        dev_file=data["dev"],
        settings=TrainSettings(vocab_size=400),
        log=lambda m: None,
    )
    assert summary["best"]["f1"] >= 0.9
    trained = json.loads((tmp_path / "out" / "config.json").read_text())["anno_mlx"]["trained"]
    assert (
        trained["learning_rate"] == FRESH_DEFAULTS["learning_rate"]
        and trained["epochs"] == FRESH_DEFAULTS["epochs"]
    )
    assert TrainSettings().resolved(fresh=False).learning_rate == 5e-5
    assert TrainSettings(learning_rate=1e-4).resolved(fresh=True).learning_rate == 1e-4


def test_masking_hides_a_seeded_share_of_real_tokens():
    from anno_mlx.objectives import IGNORE, MaskedLM
    from anno_mlx.tokenizer import train_bpe

    tokenizer = Tokenizer(train_bpe(["Greta Jensen moved to Buenos Aires last year ."] * 50, 300))
    task = MaskedLM(tokenizer, 0.3)
    rows = task.rows(
        [Example("Greta Jensen moved to Buenos Aires last year . " * 40, [])] * 8, tokenizer, 128
    )
    ids, mask = pad_rows([r for r, _ in rows], tokenizer.pad_token_id)
    inputs, targets = task.targets(rows, ids, mask, np.random.default_rng([1, 2, 3]))
    hidden = targets != IGNORE
    special = np.isin(ids, [i for i in tokenizer.special_ids().values() if i is not None])
    assert not (hidden & special).any() and not (hidden & (mask == 0)).any()
    assert 0.25 < hidden.sum() / (~special & (mask == 1)).sum() < 0.35
    np.testing.assert_array_equal(targets[hidden], ids[hidden])
    assert 0.7 < (inputs[hidden] == task.mask_id).mean() < 0.9
    np.testing.assert_array_equal(inputs[~hidden], ids[~hidden])
    again = task.targets(rows, ids, mask, np.random.default_rng([1, 2, 3]))
    np.testing.assert_array_equal(again[0], inputs)  # the same seed hides the same tokens


@pytest.mark.parametrize("backend", BACKENDS)
def test_masked_lm_training_adapts_then_fine_tunes(data, tmp_path, backend):
    settings = TrainSettings(epochs=3, batch_size=16, learning_rate=3e-3, vocab_size=400, seed=7)
    losses = []
    run = dict(
        config=data["config"],
        dev_file=data["dev_jsonl"],
        settings=settings,
        backend=backend,
        device="cpu",
        objective="mlm",
        on_epoch_end=lambda epoch, summary: losses.append(summary["dev"]["mlm_loss"]),
        log=lambda m: None,
    )
    summary = train(data["train_jsonl"], tmp_path / "mlm", **run)
    config = json.loads((tmp_path / "mlm" / "config.json").read_text())
    assert config["architectures"] == ["ModernBertForMaskedLM"] and "id2label" not in config
    # The dev loss falls from epoch to epoch, well below a uniform guess over the vocabulary,
    # and the best epoch is the one kept.
    assert losses[0] > losses[1] > losses[2] and losses[2] < np.log(config["vocab_size"]) - 1
    assert summary["best"] == {"epoch": 3, "mlm_loss": losses[2]}
    assert config["anno_mlx"]["trained"]["dev_mlm_loss"] == pytest.approx(summary["best"]["mlm_loss"])
    # The adapted encoder fine-tunes for NER like any masked-LM checkpoint.
    tuned = train(
        data["train"],
        tmp_path / "ner",
        model=tmp_path / "mlm",
        dev_file=data["dev"],
        settings=FAST,
        backend=backend,
        device="cpu",
        log=lambda m: None,
    )
    assert tuned["best"]["f1"] >= 0.9


def test_masked_lm_resumes_and_both_backends_agree(data, tmp_path):
    settings = TrainSettings(epochs=2, batch_size=16, learning_rate=3e-3, vocab_size=400, seed=7)
    outs = {}
    for backend in BACKENDS:
        outs[backend] = (
            train(
                data["train_jsonl"],
                tmp_path / backend,
                config=data["config"],
                settings=settings,
                objective="mlm",
                backend=backend,
                device="cpu",
                log=lambda m: None,
            )["loss"],
            read_weights(tmp_path / backend),
        )
    assert outs["mlx"][0] == pytest.approx(outs["torch"][0], rel=1e-4)
    for key, value in outs["mlx"][1].items():
        np.testing.assert_allclose(np.array(value), np.array(outs["torch"][1][key]), atol=3e-4)

    def interrupt_after_one(epoch, summary):
        if epoch == 1:
            raise KeyboardInterrupt

    run = dict(config=data["config"], settings=settings, objective="mlm", backend="mlx", log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        train(data["train_jsonl"], tmp_path / "cut", on_epoch_end=interrupt_after_one, **run)
    resumed = train(data["train_jsonl"], tmp_path / "cut", resume=True, **run)
    assert resumed["loss"] == pytest.approx(outs["mlx"][0], rel=1e-6)
    with pytest.raises(AnnoError, match="objective 'clm' is unknown"):
        train(data["train_jsonl"], tmp_path / "x", config=data["config"], settings=settings, objective="clm")


def test_training_option_errors_come_before_any_training(data, tmp_path, capsys):
    # A map that pairs a model type with two data types cannot score dev data: said at once.
    with pytest.raises(AnnoError, match="pairs ORG with both"):
        train(
            data["train"],
            tmp_path / "x",
            config=data["config"],
            dev_file=data["dev"],
            labels=["ORG"],
            label_map=LabelMap.parse("ORG=PER,ORG=LOC"),
            settings=FAST,
            log=lambda m: None,
        )
    assert not (tmp_path / "x.state").exists()
    with pytest.raises(AnnoError, match="--map needs the model's types"):
        train(
            data["train"],
            tmp_path / "x",
            config=data["config"],
            label_map=LabelMap.parse("conll"),
            settings=FAST,
        )
    with pytest.raises(AnnoError, match="--mask-rate 0.0 is not a share of tokens"):
        train(
            data["train_jsonl"],
            tmp_path / "x",
            config=data["config"],
            objective="mlm",
            settings=TrainSettings(mask_rate=0.0, vocab_size=400),
        )
    coarse = tmp_path / "coarse.jsonl"
    coarse.write_text(
        json.dumps({"text": "Anna went to Oslo", "entities": [{"start": 13, "end": 17, "label": "GPE|LOC"}]})
        + "\n"
    )
    with pytest.raises(AnnoError, match="labels that allow several types"):
        train(coarse, tmp_path / "x", config=data["config"], settings=FAST)
    assert main(["eval", "--data", str(data["dev"]), "--map", "ORG=PER,ORG=LOC"]) == 2
    assert "pairs ORG with both PER and LOC" in capsys.readouterr().err
