"""Tiny random GLiNER span models built with the `gliner` package itself, and that package's
outputs for them: the reference side of the GLiNER parity tests.

The package pins an older transformers than anno-mlx, so it lives in its own environment,
`.venv-gliner/` at the repository root (`scripts/install.sh` makes it). The subcommands run there,
with the repository root on PYTHONPATH; `build`, `reference` and `reference_python` below run them
from the test suite's process, which never imports gliner:

    .venv-gliner/bin/python -m anno_mlx.testing.tiny_gliner build OUT --kind uni-deberta
    .venv-gliner/bin/python -m anno_mlx.testing.tiny_gliner reference OUT --request req.json --out ref.json

The kinds (`SPECS`), all span_mode markerV0:

- `uni-modernbert`: UniEncoderSpanGLiNER on a ModernBERT backbone (byte-level BPE), no LSTM,
  hidden_size equal to the backbone's (no projection).
- `uni-deberta`: UniEncoderSpanGLiNER on a DeBERTa-v3-style backbone (Unigram tokenizer) with the
  BiLSTM (num_rnn_layers=1, the package's default and what the published DeBERTa models have).
- `bi-modernbert`: BiEncoderSpanGLiNER, a ModernBERT text encoder (hidden 32) and a BERT label
  encoder (hidden 24), hidden_size 40, so both `token_rep_layer.projection` and
  `token_rep_layer.labels_projection` exist; num_rnn_layers=1: the bi-encoder saves `rnn.lstm.*`
  but its forward never calls it.

`build(..., base_text=FILE)` (`--base-text FILE`) makes the `uni-deberta` kind at DeBERTa-v3-base's
shape with the published models' settings instead (`BASE`), for benchmarks: 12 layers of 768, 12
heads, intermediate 3,072, 256 position buckets, GLiNER hidden size 768, max_width 12, max_len 384.
Its tokenizer is trained on FILE's text with that text's common words made whole pieces (about 1.2
tokens per word on English prose, as with the 128k-piece original; the vocabulary stays small,
which costs nothing at run time: the embeddings are looked up, not multiplied), and its logits are
calibrated to mean -4.5, so that few spans pass 0.5, as with a trained model.

`build` makes a model as a user makes a new one: the backbone folders come from the tiny builders
of this package (seeded random weights), then `GLiNERConfig(model_name=<folder>, ...)` and
`GLiNER.from_config(config, backbone_from_pretrained=True)`, which adds `[FLERT]`, `<<ENT>>` and
`<<SEP>>` to a uni-encoder's tokenizer and grows its embeddings. Every weight that did not come
from a backbone (the span, prompt and projection layers, the LSTM, the added embedding rows) is
drawn again from a seeded normal, and the last layer of `prompt_rep_layer` is rescaled so that the
logits of a calibration text have mean -1 and spread 1.5: about a quarter of the spans then pass
0.5, so thresholds, overlaps, nesting and multiple labels all matter. `model_name` and
`labels_encoder` are then set to the hub ids of the models imitated, as a downloaded config has
them (the backbone configs are embedded in gliner_config.json, so nothing reads those ids), and
`save_pretrained` writes the folder. The check reloads it with
`GLiNER.from_pretrained(OUT, local_files_only=True, strict=True)` once the backbone folders are
gone and requires the same weights and bit-identical logits.

`reference` loads a folder the same way (strict, so that no weight is silently left at random)
and runs each text alone, a batch of one as `predict_entities` runs it, so that padding does not
move the last bits. Through the package's step-wise API:

    prepared = model.prepare_batch([text], labels)    # the word split, labels deduplicated
    batch = model.collate_batch(prepared["input_x"], prepared["entity_types"],
                                label_names=prepared["label_names"])  # truncation to max_len
    logits = model.run_batch(batch).logits[0]         # [words, max_width, labels], before sigmoid

`words` are `batch["tokens"][0]` (after truncation) with their offsets from `prepared`; the ids and
masks are the collated tensors the encoders were given; the valid-span mask is
`batch["span_mask"]` (a span past the last word is padding: it holds the score of span (0, 0)).
The entities are `model.predict_entities(text, labels, threshold=, flat_ner=, multi_label=)` for
each setting. Blank texts are not run by the package: no words, no logits, no entities.

Tokenizer training with `tokenizers`' Unigram trainer differs between processes, so a rebuilt
`uni-deberta` differs from an earlier one; the ModernBERT and BERT tokenizers, and with them the
other kinds, are the same in every process. Treat a built folder and the references made from it
as one fixture.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

KINDS = ("uni-modernbert", "uni-deberta", "bi-modernbert")
GLINER_VERSION = "0.2.29"
ROOT = Path(__file__).resolve().parents[2]
ENV_FOLDER = ".venv-gliner"
PYTHON_VARIABLE = "ANNO_MLX_GLINER_PYTHON"

SPECS: dict[str, dict[str, Any]] = {
    "uni-modernbert": dict(
        encoder="modernbert",
        encoder_config=dict(intermediate_size=64),  # every width a multiple of 32: it quantizes
        gliner=dict(hidden_size=32, num_rnn_layers=0, max_width=4, max_len=40),
        hub_names=dict(model_name="answerdotai/ModernBERT-base"),
        seed=11,
    ),
    "uni-deberta": dict(
        encoder="deberta-v2",
        gliner=dict(hidden_size=32, num_rnn_layers=1, max_width=5, max_len=48),
        hub_names=dict(model_name="microsoft/deberta-v3-base"),
        seed=22,
    ),
    "bi-modernbert": dict(
        encoder="modernbert",
        labels_encoder="bert",
        labels_encoder_config=dict(hidden_size=24, num_attention_heads=4, intermediate_size=40),
        gliner=dict(hidden_size=40, num_rnn_layers=1, max_width=4, max_len=64),
        hub_names=dict(model_name="answerdotai/ModernBERT-base", labels_encoder="BAAI/bge-small-en-v1.5"),
        seed=33,
    ),
}

# A request that gives every part of the pipeline work: a label of several words, punctuation,
# hyphens, underscores and accents for the word split, a blank text (skipped by the package) and
# a text longer than every kind's max_len (truncated, with a warning).
LABELS = ["person", "organization", "city or country", "date"]
TEXTS = [
    "Ada Lovelace worked with Charles Babbage in London on the Analytical Engine in 1843.",
    "Marie Curie was born in Warsaw and moved to Paris, where she studied at the Sorbonne.",
    "On 2024-01-05 the state-of-the-art lab of São Paulo's user_name team met Apple (and IBM).",
    "   ",
    " ".join(
        ["The United Nations met in New York; Tokyo, Berlin, São Paulo and Lagos are large cities."] * 4
        + ["The quick brown fox jumps over the lazy dog, 1234567890 times!? (yes)"]
    ),
]
SETTINGS = [
    {"threshold": 0.5, "flat_ner": flat_ner, "multi_label": multi_label}
    for flat_ner in (True, False)
    for multi_label in (False, True)
] + [{"threshold": 0.3, "flat_ner": True, "multi_label": False}]
REQUEST = {"texts": TEXTS, "labels": LABELS, "settings": SETTINGS}

# DeBERTa-v3-base's shape and GLiNER's published settings (`base_text`).
BASE: dict[str, Any] = dict(
    encoder=dict(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        position_buckets=256,
        initializer_range=0.02,
        tokenizer_vocab=1000,
    ),
    gliner=dict(hidden_size=768, max_width=12, max_len=384),
    logits=(-4.5, 1.5),
)

CALIBRATION_TEXT = "Ada Lovelace met Charles Babbage in London on Tuesday, 27 November 1843."
LOGIT_MEAN, LOGIT_STD = -1.0, 1.5
# The head's matrices ~ N(0, 1/fan_in), its vectors ~ N(0, VECTOR_STD^2).
VECTOR_STD = 0.2
BACKBONE_PREFIXES = ("token_rep_layer.bert_layer.model.", "token_rep_layer.labels_encoder.model.")


# --- In the test suite's process -----------------------------------------------------------------


def reference_python() -> Path:
    """The reference environment's Python: $ANNO_MLX_GLINER_PYTHON, else `.venv-gliner/bin/python`
    at the repository root."""
    path = Path(os.environ.get(PYTHON_VARIABLE) or ROOT / ENV_FOLDER / "bin" / "python")
    if not path.exists():
        raise RuntimeError(
            f"no GLiNER reference environment at {path}: run `bash scripts/install.sh` "
            f"(or set {PYTHON_VARIABLE} to a Python with gliner=={GLINER_VERSION})"
        )
    return path


def _run(args: list[str]) -> None:
    """This module's command line in the reference environment, offline."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(ROOT))
    command = [str(reference_python()), "-m", "anno_mlx.testing.tiny_gliner", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-40:])
        raise RuntimeError(f"`{' '.join(command)}` failed (exit {done.returncode}):\n{tail}")


def build(
    kind: str,
    out: str | Path,
    max_len: Optional[int] = None,
    max_width: Optional[int] = None,
    bin: bool = False,
    seed: Optional[int] = None,
    base_text: Optional[str | Path] = None,
) -> Path:
    """Build a tiny GLiNER model of `kind` into `out` with the package (see `build_model`);
    with `base_text` (a text file, uni-deberta only), one of DeBERTa-v3-base's size (`BASE`)."""
    args = ["build", str(out), "--kind", kind]
    options = (
        ("--max-len", max_len),
        ("--max-width", max_width),
        ("--seed", seed),
        ("--base-text", base_text),
    )
    for flag, value in options:
        if value is not None:
            args += [flag, str(value)]
    _run(args + (["--bin"] if bin else []))
    return Path(out)


def reference(model_dir: str | Path, request: dict[str, Any]) -> dict[str, Any]:
    """The package's words, inputs, logits and entities for `request` (see `reference_outputs`)."""
    with tempfile.TemporaryDirectory(prefix="gliner-reference-") as tmp:
        request_path, out_path = Path(tmp) / "request.json", Path(tmp) / "reference.json"
        request_path.write_text(json.dumps(request, ensure_ascii=False), encoding="utf-8")
        _run(["reference", str(model_dir), "--request", str(request_path), "--out", str(out_path)])
        return json.loads(out_path.read_text(encoding="utf-8"))


# --- In the reference environment ----------------------------------------------------------------


def _backbone(family: str, out: Path, seed: int, overrides: dict[str, Any]) -> Path:
    """A tiny random backbone folder (the bare encoder, no head) from this package's builders."""
    from anno_mlx.testing.tiny_bert import make_tiny_bert
    from anno_mlx.testing.tiny_checkpoint import make_tiny_checkpoint
    from anno_mlx.testing.tiny_deberta_v2 import make_tiny_deberta_v2

    builders = {
        "modernbert": make_tiny_checkpoint,
        "deberta-v2": make_tiny_deberta_v2,
        "bert": make_tiny_bert,
    }
    return builders[family](out, head="encoder", seed=seed, **overrides)


def randomize(model: Any, seed: int, backbone_vocab: int) -> None:
    """Draw every weight that did not come from a backbone checkpoint again (seeded): the GLiNER
    layers, and the embedding rows of the tokens the package added, with the existing rows' spread."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.model.named_parameters():
            if name.startswith(BACKBONE_PREFIXES):
                continue
            std = param.shape[1] ** -0.5 if param.dim() >= 2 else VECTOR_STD
            param.copy_(torch.randn(param.shape, generator=generator) * std)
        embeddings = model.model.token_rep_layer.get_input_embeddings().weight
        if embeddings.shape[0] > backbone_vocab:
            spread = embeddings[:backbone_vocab].std().item()
            added = embeddings[backbone_vocab:]
            added.copy_(torch.randn(added.shape, generator=generator) * spread)


def _collated(model: Any, texts: list[str], labels: list[str]) -> dict[str, Any]:
    prepared = model.prepare_batch(texts, labels)
    return model.collate_batch(
        prepared["input_x"], prepared["entity_types"], label_names=prepared["label_names"]
    )


def calibrate(model: Any, mean: float = LOGIT_MEAN, spread: float = LOGIT_STD) -> None:
    """Scale and shift the last layer of `prompt_rep_layer` so that the logits of CALIBRATION_TEXT
    x LABELS have `mean` and `spread`. The logits are linear in that layer:
    scaling its weight and bias by a scales them by a, and adding b * s / |s|^2 to its bias (s the
    mean span vector) adds b to their mean."""
    import torch

    batch = _collated(model, [CALIBRATION_TEXT], LABELS)
    out = model.run_batch(batch, return_vectors=True)
    valid = batch["span_mask"].reshape(out.logits.shape[:3])
    logits, spans = out.logits[valid], out.span_embeddings[valid]
    last = model.model.prompt_rep_layer[-1]
    scale = spread / logits.std().item()
    shift = mean - scale * logits.mean().item()
    mean_span = spans.mean(0)
    with torch.no_grad():
        last.weight.mul_(scale)
        last.bias.mul_(scale)
        last.bias.add_(shift * mean_span / mean_span.dot(mean_span))


def build_model(
    kind: str, sources: Path, max_len: int, max_width: int, seed: int, base_text: Optional[str] = None
) -> Any:
    """A new GLiNER model of `kind`, made as a user makes one, with random weights everywhere; the
    backbone folders go under `sources`. With `base_text`, the `BASE` shape (uni-deberta only)."""
    import torch
    from gliner import GLiNER, GLiNERConfig

    spec = SPECS[kind]
    overrides: dict[str, Any] = dict(spec.get("encoder_config", {}))
    logits = (LOGIT_MEAN, LOGIT_STD)
    if base_text is not None:
        spec = dict(spec, gliner=dict(spec["gliner"], **BASE["gliner"]))
        overrides = dict(BASE["encoder"], tokenizer_text=base_text)
        logits = BASE["logits"]
    encoder = _backbone(spec["encoder"], sources / "encoder", seed, overrides)
    extra = {}
    if "labels_encoder" in spec:
        labels_encoder = _backbone(
            spec["labels_encoder"], sources / "labels-encoder", seed + 1, spec["labels_encoder_config"]
        )
        extra["labels_encoder"] = str(labels_encoder)
    settings = dict(spec["gliner"], max_len=max_len, max_width=max_width)
    config = GLiNERConfig(model_name=str(encoder), span_mode="markerV0", dropout=0.4, **settings, **extra)
    torch.manual_seed(seed)  # the package draws the added embedding rows (drawn again below)
    model = GLiNER.from_config(config, backbone_from_pretrained=True, local_files_only=True).eval()
    randomize(model, seed + 100, json.loads((encoder / "config.json").read_text())["vocab_size"])
    calibrate(model, *logits)
    for key, name in spec["hub_names"].items():
        setattr(model.config, key, name)
        embedded = (
            model.config.labels_encoder_config if key == "labels_encoder" else model.config.encoder_config
        )
        embedded._name_or_path = name  # else the temporary folder is written into gliner_config.json
    return model


def load_model(folder: str | Path) -> Any:
    """The package's loader, offline and strict (its default would keep random weights for
    missing keys)."""
    from gliner import GLiNER

    return GLiNER.from_pretrained(str(folder), local_files_only=True, strict=True).eval()


def check_reload(model: Any, folder: Path) -> None:
    """The saved folder, loaded again, holds the same weights and gives bit-identical logits."""
    import torch

    loaded = load_model(folder)
    saved, read = model.model.state_dict(), loaded.model.state_dict()
    if saved.keys() != read.keys():
        raise RuntimeError(f"reloaded keys differ: {sorted(set(saved) ^ set(read))[:5]}")
    changed = [key for key in saved if not torch.equal(saved[key], read[key])]
    if changed:
        raise RuntimeError(f"reloaded weights differ: {changed[:5]}")
    texts = [CALIBRATION_TEXT, *[text for text in TEXTS if text.strip()]]
    before = model.run_batch(_collated(model, texts, LABELS)).logits
    after = loaded.run_batch(_collated(loaded, texts, LABELS)).logits
    if not torch.equal(before, after):
        raise RuntimeError(f"reloaded logits differ by up to {(before - after).abs().max().item()}")


def reference_outputs(model: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Per text of `request`, run alone: words, encoder inputs, logits, valid spans and the
    entities of each setting (see the module's docstring)."""
    import gliner
    import torch
    import transformers

    labels = request["labels"]
    results = []
    for text in request["texts"]:
        entities = [
            model.predict_entities(
                text,
                labels,
                threshold=setting["threshold"],
                flat_ner=setting["flat_ner"],
                multi_label=setting["multi_label"],
            )
            for setting in request["settings"]
        ]
        result: dict[str, Any] = dict(
            text=text, words=[], truncated=False, labels=[], logits=[], span_mask=[], entities=entities
        )
        prepared = model.prepare_batch([text], labels)
        if prepared["valid_texts"]:
            batch = model.collate_batch(
                prepared["input_x"], prepared["entity_types"], label_names=prepared["label_names"]
            )
            logits = model.run_batch(batch).logits[0].float()
            words = batch["tokens"][0]
            starts, ends = prepared["start_token_map"][0], prepared["end_token_map"][0]
            names = batch["id_to_classes"]
            result.update(
                words=[{"text": w, "start": s, "end": e} for w, s, e in zip(words, starts, ends)],
                truncated=len(words) < len(prepared["tokens"][0]),
                labels=[names[i] for i in range(1, len(names) + 1)],
                logits=logits.tolist(),
                span_mask=batch["span_mask"].reshape(logits.shape[:2]).tolist(),
            )
            for key in (
                "input_ids",
                "attention_mask",
                "words_mask",
                "labels_input_ids",
                "labels_attention_mask",
            ):
                if isinstance(batch.get(key), torch.Tensor):
                    value = batch[key]
                    result[key] = (value if key.startswith("labels_") else value[0]).tolist()
        results.append(result)
    return {
        "versions": {
            "gliner": gliner.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_width": model.config.max_width,
        "max_len": model.config.max_len,
        "results": results,
    }


def command_build(args: argparse.Namespace) -> None:
    spec = SPECS[args.kind]
    sizes = dict(spec["gliner"], **(BASE["gliner"] if args.base_text else {}))
    base_text = None if args.base_text is None else Path(args.base_text).read_text(encoding="utf-8")
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="gliner-backbones-") as sources:
        model = build_model(
            args.kind,
            Path(sources),
            max_len=args.max_len or sizes["max_len"],
            max_width=args.max_width or sizes["max_width"],
            seed=spec["seed"] if args.seed is None else args.seed,
            base_text=base_text,
        )
    # The backbone folders are gone: the reload must not need them.
    model.save_pretrained(out, safe_serialization=not args.bin)
    check_reload(model, out)
    print(out)


def command_reference(args: argparse.Namespace) -> None:
    request = json.loads(Path(args.request).read_text(encoding="utf-8"))
    outputs = reference_outputs(load_model(args.model), request)
    Path(args.out).write_text(json.dumps(outputs, ensure_ascii=False), encoding="utf-8")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Tiny GLiNER models and the gliner package's outputs.")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="build, save and reload a tiny random GLiNER model")
    make.add_argument("out", help="folder to write")
    make.add_argument("--kind", required=True, choices=KINDS)
    make.add_argument("--max-len", type=int, help="words kept per text (default: the kind's)")
    make.add_argument("--max-width", type=int, help="longest span in words (default: the kind's)")
    make.add_argument("--bin", action="store_true", help="pytorch_model.bin (the package's default)")
    make.add_argument("--seed", type=int, help="default: the kind's")
    make.add_argument(
        "--base-text", help="DeBERTa-v3-base's size (uni-deberta), its tokenizer trained on this text file"
    )
    run = commands.add_parser("reference", help="the package's outputs for a request")
    run.add_argument("model", help="a GLiNER model folder")
    run.add_argument("--request", required=True, help='JSON: {"texts", "labels", "settings"}')
    run.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    if args.command == "build" and Path(args.out).exists() and any(Path(args.out).iterdir()):
        parser.error(f"{args.out} is not empty")  # an old weights file would be loaded instead
    if args.command == "build" and args.base_text and args.kind != "uni-deberta":
        parser.error("--base-text builds the uni-deberta kind only")
    # Nothing here needs a hub; the subcommands import gliner only after this.
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import torch

    torch.set_num_threads(1)
    if args.command == "build":
        command_build(args)
    else:
        command_reference(args)


if __name__ == "__main__":
    main()
