"""GLiNER's configuration: `ModelArgs` from `gliner_config.json`, framework-free.

A GLiNER checkpoint is a span model on top of an ordinary encoder: its config embeds the
encoder's own config (`encoder_config`, and `labels_encoder_config` for a bi-encoder), which
the encoder's family reads as usual. Only the span-level models (`span_mode` "markerV0") run
here; the other variants of the `gliner` package are refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..checks import check_booleans, check_sizes, is_int, known_fields

SPAN_MODE = "markerV0"
POOLING = "first"
SPLITTER = "whitespace"
SIZES = ("hidden_size", "max_width", "max_len")
# gliner_config.json fields that select a variant we do not run, and what it is.
VARIANTS = {
    "relations_layer": "relation extraction",
    "labels_decoder": "a label decoder",
    "span_encoder_config": "a span context encoder",
}


@dataclass
class ModelArgs:
    encoder: Any  # the text encoder's family ModelArgs
    labels_encoder: Any = None  # a bi-encoder's label encoder ModelArgs; None: labels are in the prompt
    model_type: str = "gliner"
    hidden_size: int = 512  # D, the width of the span and label representations
    max_width: int = 12  # K: spans of 1..K words
    max_len: int = 384  # words per text the model was trained on
    num_rnn_layers: int = 1  # the bidirectional LSTM over words (uni-encoders only)
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    class_token_index: int = -1  # the id of ent_token in the text tokenizer
    embed_ent_token: bool = True  # a label's vector is its <<ENT>> token's (else the next token's)
    model_name: str = ""  # the encoder the model was built from (a hub id), for messages
    labels_encoder_name: str = ""

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "ModelArgs":
        """The embedded encoder configs are read by their own families."""
        refused = check_variant(config)
        if refused:
            raise ValueError(refused)
        values = known_fields(cls, config)
        values.pop("encoder", None)
        values.pop("labels_encoder", None)
        values["model_name"] = str(config.get("model_name") or "")
        values["labels_encoder_name"] = str(config.get("labels_encoder") or "")
        encoder = encoder_args(config.get("encoder_config"), "encoder_config")
        labels = None
        if config.get("labels_encoder"):
            labels = encoder_args(config.get("labels_encoder_config"), "labels_encoder_config")
        return cls(encoder=encoder, labels_encoder=labels, **values)

    def __post_init__(self):
        check_sizes(self, SIZES)
        check_booleans(self, ("embed_ent_token",))
        if not is_int(self.num_rnn_layers) or not 0 <= self.num_rnn_layers <= 8:
            raise ValueError("num_rnn_layers must be a whole number from 0 to 8")
        if self.num_rnn_layers and self.labels_encoder is None and self.hidden_size % 2:
            raise ValueError("hidden_size must be even for the bidirectional LSTM")
        for name in ("ent_token", "sep_token"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        if not is_int(self.class_token_index):
            raise ValueError("class_token_index must be a whole number")

    @property
    def bi_encoder(self) -> bool:
        return self.labels_encoder is not None

    @property
    def uses_rnn(self) -> bool:
        """The `gliner` package builds the LSTM for bi-encoders too but never runs it."""
        return self.num_rnn_layers > 0 and not self.bi_encoder

    @property
    def vocab_size(self) -> int:
        return self.encoder.vocab_size

    @property
    def max_length(self) -> int:
        """The text encoder's longest input in tokens (prompt and special tokens included)."""
        return self.encoder.max_length

    @property
    def unused_tokens(self) -> tuple[str, ...]:
        """Tokens the `gliner` package adds to a bi-encoder's text tokenizer without giving them
        embeddings; the word splitter never lets them reach the model."""
        return ("[FLERT]", self.ent_token, self.sep_token) if self.bi_encoder else ()

    @property
    def id2label(self) -> dict[int, str]:
        return {}  # the labels are given with each call

    def size_mismatch(self, shapes: dict[str, tuple[int, ...]]) -> Optional[str]:
        """The encoders' sizes against their weights, and the span layers' width against D, in
        the `gliner` package's key names or ours (a converted folder)."""
        ours = not any(k.startswith(TEXT_PREFIX) for k in shapes)
        encoders = [("encoder_config", self.encoder, "encoder." if ours else TEXT_PREFIX)]
        if self.labels_encoder is not None:
            encoders.append(
                ("labels_encoder_config", self.labels_encoder, "labels_encoder." if ours else LABEL_PREFIX)
            )
        for name, args, prefix in encoders:
            part = {k.removeprefix(prefix): v for k, v in shapes.items() if k.startswith(prefix)}
            if problem := args.size_mismatch(part):
                return f"{name}: {problem}"
        prompt = shapes.get("prompt_rep.outer.weight" if ours else "prompt_rep_layer.3.weight")
        if prompt is None:
            return "the weights have no prompt_rep_layer; is this a GLiNER span model?"
        if prompt[0] != self.hidden_size:
            return f"hidden_size is {self.hidden_size:,} but the span layers' width is {prompt[0]:,}"
        return None


# Where the `gliner` package keeps the encoders' weights.
TEXT_PREFIX = "token_rep_layer.bert_layer.model."
LABEL_PREFIX = "token_rep_layer.labels_encoder.model."


def check_variant(config: dict[str, Any]) -> Optional[str]:
    """Why a `gliner_config.json` describes a model we do not run (None: we run it)."""
    mode = config.get("span_mode", SPAN_MODE)
    if mode in ("token_level", "token-level"):
        return "token-level GLiNER models are not supported; use a span model (span_mode markerV0)"
    if mode != SPAN_MODE:
        return f"span_mode {mode!r} is not supported; only {SPAN_MODE} span models run"
    if config.get("model_type") == "gliner_streaming_span":
        return "streaming GLiNER models are not supported"
    for field_name, what in VARIANTS.items():
        if config.get(field_name):
            return f"GLiNER models with {what} ({field_name}) are not supported"
    if config.get("fuse_layers"):
        return "GLiNER models with fuse_layers are not supported"
    if config.get("precomputed_prompts_mode"):
        return "GLiNER models with precomputed prompts are not supported"
    if config.get("labels_encoder") and config.get("post_fusion_schema"):
        return "bi-encoder GLiNER models with post_fusion_schema are not supported"
    if config.get("subtoken_pooling", POOLING) != POOLING:
        return f"subtoken_pooling {config.get('subtoken_pooling')!r} is not supported; only {POOLING!r}"
    if config.get("words_splitter_type", SPLITTER) != SPLITTER:
        return (
            f"words_splitter_type {config.get('words_splitter_type')!r} is not supported; only {SPLITTER!r}"
        )
    return None


def encoder_args(config: Any, name: str) -> Any:
    """An embedded encoder config read by its family's ModelArgs."""
    from .. import family

    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ValueError(
            f"{name} is missing; convert the model with `python -m anno_mlx convert` while online, "
            f"which reads the encoder's config from the hub"
        )
    if config["model_type"] == "gliner":
        raise ValueError(f"{name} cannot be another GLiNER model")
    return family(config["model_type"]).ModelArgs.from_dict(config)
