"""The encoder API: architecture, config and `Encoder.encode` (hidden states), for every family.

`EncoderConfig.from_model_name` answers "what is this model?" from a table of released
checkpoints (no files); any other name is refused. `EncoderConfig.from_pretrained` reads the real
`config.json`, which is authoritative. Both derive the config from the family's `ModelArgs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .batching import call_arrays, model_calls, packed_row_tokens, packs_by_default, split_outputs
from .errors import AnnoError
from .models import FAMILIES, build_args, family
from .models.modernbert import GLOBAL
from .runners import runner_for


class EncoderArchitecture(str, Enum):
    """A model family, by its package name in `anno_mlx.models`."""

    MODERNBERT = "modernbert"
    BERT = "bert"
    ROBERTA = "roberta"
    DISTILBERT = "distilbert"
    DEBERTA_V2 = "deberta_v2"

    @property
    def default_model(self) -> str:
        return DEFAULT_MODELS[self]

    @property
    def supported(self) -> bool:
        return self.value in FAMILIES.values()


DEFAULT_MODELS = {
    EncoderArchitecture.MODERNBERT: "answerdotai/ModernBERT-base",
    EncoderArchitecture.BERT: "google-bert/bert-base-cased",
    EncoderArchitecture.ROBERTA: "FacebookAI/roberta-base",
    EncoderArchitecture.DISTILBERT: "distilbert/distilbert-base-cased",
    EncoderArchitecture.DEBERTA_V2: "microsoft/deberta-v3-base",
}

SPECIAL = ("unk", "cls", "sep", "pad", "mask")
_MODERNBERT_EN = {"unk_token_id": 50280, "cls_token_id": 50281, "sep_token_id": 50282, "pad_token_id": 50283}
_SBINTUITIONS = {
    "vocab_size": 102400,
    "unk_token_id": 0,
    "cls_token_id": 6,
    "sep_token_id": 4,
    "pad_token_id": 3,
}
_BERT_CASED = {
    "vocab_size": 28996,
    "unk_token_id": 100,
    "cls_token_id": 101,
    "sep_token_id": 102,
    "pad_token_id": 0,
}
_ROBERTA_IDS = {"cls_token_id": 0, "pad_token_id": 1, "sep_token_id": 2, "unk_token_id": 3}
_ROBERTA_SIZES = {"max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-5}
_LARGE = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16}


def _modernbert(
    hidden: int, intermediate: int, layers: int, heads: int, ids: dict, mask: Optional[int]
) -> dict:
    return dict(
        model_type="modernbert",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        mask_token_id=mask,
        **ids,
    )


def _bert(model_type: str, vocab_size: int, mask: int, ids: dict, **sizes: Any) -> dict:
    return dict(model_type=model_type, **{**ids, "vocab_size": vocab_size}, mask_token_id=mask, **sizes)


# Released checkpoints whose config.json we know, by hub id (lower case): model_type and the
# values that differ from the family's defaults, special-token ids included.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "answerdotai/modernbert-base": _modernbert(768, 1152, 22, 12, _MODERNBERT_EN, 50284),
    "answerdotai/modernbert-large": _modernbert(1024, 2624, 28, 16, _MODERNBERT_EN, 50284),
    "sbintuitions/modernbert-ja-30m": _modernbert(256, 1024, 10, 4, _SBINTUITIONS, None),
    "sbintuitions/modernbert-ja-70m": _modernbert(384, 1536, 13, 6, _SBINTUITIONS, None),
    "sbintuitions/modernbert-ja-130m": _modernbert(512, 2048, 19, 8, _SBINTUITIONS, None),
    "sbintuitions/modernbert-ja-310m": _modernbert(768, 3072, 25, 12, _SBINTUITIONS, None),
    "google-bert/bert-base-cased": _bert("bert", 28996, 103, _BERT_CASED),
    "google-bert/bert-base-uncased": _bert("bert", 30522, 103, _BERT_CASED),
    "google-bert/bert-large-cased": _bert("bert", 28996, 103, _BERT_CASED, **_LARGE),
    "facebookai/roberta-base": _bert("roberta", 50265, 50264, _ROBERTA_IDS, **_ROBERTA_SIZES),
    "facebookai/roberta-large": _bert("roberta", 50265, 50264, _ROBERTA_IDS, **_ROBERTA_SIZES, **_LARGE),
    "facebookai/xlm-roberta-base": _bert("xlm-roberta", 250002, 250001, _ROBERTA_IDS, **_ROBERTA_SIZES),
    "distilbert/distilbert-base-cased": _bert("distilbert", 28996, 103, _BERT_CASED),
    "microsoft/deberta-v3-base": _bert(
        "deberta-v2",
        128100,
        128000,
        {"pad_token_id": 0, "cls_token_id": 1, "sep_token_id": 2, "unk_token_id": 3},
        relative_attention=True,
        position_buckets=256,
        max_relative_positions=-1,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
        layer_norm_eps=1e-7,
    ),
}
# Short names the hub still resolves (`bert-base-cased` is google-bert/bert-base-cased).
for _name in list(KNOWN_MODELS):
    KNOWN_MODELS.setdefault(_name.split("/", 1)[1], KNOWN_MODELS[_name])


@dataclass(frozen=True)
class EncoderConfig:
    architecture: EncoderArchitecture
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_attention_heads: int
    max_position_embeddings: int
    max_length: int  # the longest input in tokens, special tokens included
    use_rope: bool
    global_rope_base: float
    local_rope_base: float
    local_window: int
    layer_types: tuple[str, ...]
    norm_eps: float = 1e-5
    unk_token_id: Optional[int] = None
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    mask_token_id: Optional[int] = None

    @property
    def global_layers(self) -> list[int]:
        return [i for i, kind in enumerate(self.layer_types) if kind == GLOBAL]

    @classmethod
    def from_model_name(cls, name: str) -> "EncoderConfig":
        """The config of a released checkpoint we know by name (`KNOWN_MODELS`); any other name
        is refused rather than guessed."""
        config = KNOWN_MODELS.get(name.lower())
        if config is None:
            raise AnnoError(
                f"{name!r} is not a model anno-mlx knows by name; use "
                f"EncoderConfig.from_pretrained(folder_or_hub_id), which reads its config.json"
            )
        return cls.from_model_args(build_args(config, family(config["model_type"]).ModelArgs))

    @classmethod
    def from_model_args(cls, args: Any, special: tuple = (None,) * 5) -> "EncoderConfig":
        """From a family's ModelArgs; `special` (unk, cls, sep, pad, mask) fills the ids the
        config leaves out."""
        given = {name: getattr(args, f"{name}_token_id", None) for name in SPECIAL}
        ids = {
            f"{name}_token_id": given[name] if given[name] is not None else fallback
            for name, fallback in zip(SPECIAL, special)
        }
        return cls(
            architecture=EncoderArchitecture(family(args.model_type).__name__.rsplit(".", 1)[1]),
            vocab_size=args.vocab_size,
            hidden_size=args.hidden_size,
            intermediate_size=args.intermediate_size,
            num_layers=args.num_hidden_layers,
            num_attention_heads=args.num_attention_heads,
            max_position_embeddings=args.max_position_embeddings,
            max_length=args.max_length,
            use_rope=hasattr(args, "global_rope_theta"),
            global_rope_base=float(getattr(args, "global_rope_theta", 0.0)),
            local_rope_base=float(getattr(args, "local_rope_theta", 0.0)),
            local_window=int(getattr(args, "local_attention", 0)),
            layer_types=tuple(args.layer_types),
            norm_eps=args.norm_eps,
            **ids,
        )

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path) -> "EncoderConfig":
        """Read `config.json` (special-token ids included, as they differ between models);
        the tokenizer fills in ids the config leaves out."""
        from .checkpoint import read_config
        from .loading import resolve_model

        folder = resolve_model(path_or_id)
        config = read_config(folder)
        args = build_args(config, family(config.get("model_type")).ModelArgs)
        return cls.from_model_args(args, _tokenizer_special_ids(folder))


def _tokenizer_special_ids(folder: Path) -> tuple:
    """(unk, cls, sep, pad, mask) from the folder's tokenizer, where it has one."""
    from .tokenizer import TOKENIZER_FILE, Tokenizer

    if not (folder / TOKENIZER_FILE).is_file():
        return (None,) * 5
    ids = Tokenizer.from_folder(folder).special_ids()
    return tuple(ids[name] for name in ("unk", "cls", "sep", "pad", "mask"))


class Encoder:
    """Text -> contextual token embeddings `[seq_len, hidden]` (special tokens included)."""

    def __init__(self, model, tokenizer, config: EncoderConfig, batch_size: int = 8):
        self.runner = runner_for(model)  # an MLX or PyTorch model in memory is wrapped in its runner
        self.tokenizer = tokenizer
        self.config = config
        self.batch_size = batch_size
        # Short texts share rows end to end where the model takes packed rows (`batching`).
        self.packing = packs_by_default(self.runner)

    @classmethod
    def from_pretrained(
        cls, path_or_id: str | Path, batch_size: int = 8, backend: str = "auto", device: Optional[str] = None
    ) -> "Encoder":
        from .loading import load_runner, resolve_model

        folder = resolve_model(path_or_id)
        runner, tokenizer = load_runner(folder, head="encoder", backend=backend, device=device)
        if tokenizer is None:
            raise AnnoError(f"{path_or_id} has no tokenizer.json; an Encoder needs one to read text")
        return cls(runner, tokenizer, EncoderConfig.from_pretrained(folder), batch_size)

    @classmethod
    def from_architecture(cls, architecture: EncoderArchitecture) -> "Encoder":
        """The architecture's default checkpoint (ModernBERT: answerdotai/ModernBERT-base)."""
        if not architecture.supported:
            supported = ", ".join(a.value for a in EncoderArchitecture if a.supported)
            raise AnnoError(f"{architecture.value} encoders are not supported yet; supported: {supported}")
        return cls.from_pretrained(architecture.default_model)

    @property
    def model(self):
        """The network the runner runs (an MLX or PyTorch module)."""
        return self.runner.model

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        """Embeddings of each text; texts run together (`batching`): packed end to end into
        shared rows where the model allows it, otherwise batched with texts of similar length, so
        that padding costs little; results come back in the order given."""
        encodings = self.tokenizer.encode_batch(list(texts))
        limit = self.config.max_length
        for i, enc in enumerate(encodings):
            if len(enc.ids) > limit:
                raise AnnoError(
                    f"text {i} is {len(enc.ids)} tokens, more than the model's {limit}; split it "
                    f"(the NER pipeline windows long documents itself)"
                )
        rows = [np.asarray(e.ids, dtype=np.int32) for e in encodings]
        widths = [len(r) for r in rows]
        results: list[Optional[tuple[np.ndarray, int]]] = [None] * len(encodings)
        row_tokens = packed_row_tokens(self.runner.args, self.batch_size) if self.packing else 0
        for call in model_calls(widths, self.batch_size, row_tokens):
            ids, mask, sequence_ids = call_arrays(rows, call, self.tokenizer.pad_token_id)
            hidden = self.runner(ids, mask, sequence_ids=sequence_ids)
            for i, states in split_outputs(hidden, call, widths):
                results[i] = (states, widths[i])
        return results  # type: ignore[return-value]
