"""The encoder API anno documents for ModernBERT: architecture, config and `Encoder.encode`.

`EncoderConfig.from_model_name` answers "what is this model?" from its name alone (no files);
`EncoderConfig.from_pretrained` reads the real `config.json`, which is authoritative.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Optional

import numpy as np

from .checkpoint import read_config
from .errors import AnnoError
from .models.modernbert import GLOBAL, ModelArgs
from .runners import runner_for
from .tokenizer import pad_rows


class EncoderArchitecture(str, Enum):
    MODERNBERT = "modernbert"
    BERT = "bert"

    @property
    def default_model(self) -> str:
        return DEFAULT_MODELS[self]


DEFAULT_MODELS = {
    EncoderArchitecture.MODERNBERT: "answerdotai/ModernBERT-base",
    EncoderArchitecture.BERT: "google-bert/bert-base-cased",
}
SUPPORTED = (EncoderArchitecture.MODERNBERT,)

# (hidden, intermediate, layers, heads, vocab) of released checkpoints whose sizes we know.
MODERNBERT_SIZES = {
    "answerdotai/modernbert-base": (768, 1152, 22, 12, 50368),
    "answerdotai/modernbert-large": (1024, 2624, 28, 16, 50368),
    "sbintuitions/modernbert-ja-30m": (256, 1024, 10, 4, 102400),
    "sbintuitions/modernbert-ja-310m": (768, 3072, 25, 12, 102400),
}
# (unk, cls, sep, pad, mask) as each family's tokenizer defines them.
ANSWERDOTAI_SPECIAL = (50280, 50281, 50282, 50283, 50284)
SBINTUITIONS_SPECIAL = (None, 6, 4, 3, None)


@dataclass(frozen=True)
class EncoderConfig:
    architecture: EncoderArchitecture
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_attention_heads: int
    max_position_embeddings: int
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
        """Recognise an architecture by its hub name: ModernBERT (answerdotai, the Japanese
        sbintuitions/modernbert-ja-* and llm-jp ModernBERT families) or BERT."""
        lowered = name.lower()
        if "modernbert" in lowered:
            family = lowered.split("/")[0]
            special = {"answerdotai": ANSWERDOTAI_SPECIAL, "sbintuitions": SBINTUITIONS_SPECIAL}.get(
                family, (None,) * 5
            )
            large = "large" in lowered.split("/")[-1]
            default = MODERNBERT_SIZES[
                "answerdotai/modernbert-large" if large else "answerdotai/modernbert-base"
            ]
            hidden, inter, layers, heads, vocab = MODERNBERT_SIZES.get(lowered, default)
            args = ModelArgs.from_dict(
                dict(
                    vocab_size=vocab,
                    hidden_size=hidden,
                    intermediate_size=inter,
                    num_hidden_layers=layers,
                    num_attention_heads=heads,
                )
            )
            unk, cls_id, sep, pad, mask = special  # by family: ids differ between tokenizers
            return replace(
                cls.from_model_args(args),
                unk_token_id=unk,
                cls_token_id=cls_id,
                sep_token_id=sep,
                pad_token_id=pad,
                mask_token_id=mask,
            )
        if "bert" in lowered:
            return cls._bert(lowered)
        raise AnnoError(
            f"cannot tell the architecture of {name!r} from its name; use EncoderConfig.from_pretrained"
        )

    @classmethod
    def _bert(cls, lowered: str) -> "EncoderConfig":
        large = "large" in lowered
        hidden, layers = (1024, 24) if large else (768, 12)
        cased = "uncased" not in lowered
        return cls(
            architecture=EncoderArchitecture.BERT,
            vocab_size=28996 if cased else 30522,
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_layers=layers,
            num_attention_heads=hidden // 64,
            max_position_embeddings=512,
            use_rope=False,
            global_rope_base=0.0,
            local_rope_base=0.0,
            local_window=0,
            layer_types=(GLOBAL,) * layers,
            norm_eps=1e-12,
            unk_token_id=100,
            cls_token_id=101,
            sep_token_id=102,
            pad_token_id=0,
            mask_token_id=103,
        )

    @classmethod
    def from_model_args(cls, args: ModelArgs, special: tuple = (None,) * 5) -> "EncoderConfig":
        unk, cls_id, sep, pad, mask = special
        return cls(
            architecture=EncoderArchitecture.MODERNBERT,
            vocab_size=args.vocab_size,
            hidden_size=args.hidden_size,
            intermediate_size=args.intermediate_size,
            num_layers=args.num_hidden_layers,
            num_attention_heads=args.num_attention_heads,
            max_position_embeddings=args.max_position_embeddings,
            use_rope=True,
            global_rope_base=args.global_rope_theta,
            local_rope_base=args.local_rope_theta,
            local_window=args.local_attention,
            layer_types=tuple(args.layer_types),
            norm_eps=args.norm_eps,
            unk_token_id=args.unk_token_id if args.unk_token_id is not None else unk,
            cls_token_id=args.cls_token_id if args.cls_token_id is not None else cls_id,
            sep_token_id=args.sep_token_id if args.sep_token_id is not None else sep,
            pad_token_id=args.pad_token_id if args.pad_token_id is not None else pad,
            mask_token_id=args.mask_token_id if args.mask_token_id is not None else mask,
        )

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path) -> "EncoderConfig":
        """Read `config.json` (special-token ids included, as they differ between models);
        the tokenizer fills in ids the config leaves out."""
        from .loading import resolve_model

        folder = resolve_model(path_or_id)
        config = read_config(folder)
        if config.get("model_type") != "modernbert":
            raise AnnoError(
                f"{path_or_id} is a {config.get('model_type')!r} model; only ModernBERT encoders are supported"
            )
        args = ModelArgs.from_dict(config)
        special = _tokenizer_special_ids(folder)
        return cls.from_model_args(args, special)


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
        if architecture not in SUPPORTED:
            raise AnnoError(f"{architecture.value} encoders are not supported yet; supported: modernbert")
        return cls.from_pretrained(architecture.default_model)

    @property
    def model(self):
        """The network the runner runs (an MLX or PyTorch module)."""
        return self.runner.model

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[tuple[np.ndarray, int]]:
        """Embeddings of each text; texts of similar length are batched together so that
        padding costs little, and results come back in the order given."""
        encodings = self.tokenizer.encode_batch(list(texts))
        limit = self.config.max_position_embeddings
        for i, enc in enumerate(encodings):
            if len(enc.ids) > limit:
                raise AnnoError(
                    f"text {i} is {len(enc.ids)} tokens, more than the model's {limit}; split it "
                    f"(the NER pipeline windows long documents itself)"
                )
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        results: list[Optional[tuple[np.ndarray, int]]] = [None] * len(encodings)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            ids, mask = pad_rows(
                [np.asarray(encodings[i].ids, dtype=np.int32) for i in chunk], self.tokenizer.pad_token_id
            )
            hidden = self.runner(ids, None if mask.all() else mask)
            for row, i in enumerate(chunk):
                n = len(encodings[i].ids)
                results[i] = (hidden[row, :n], n)
        return results  # type: ignore[return-value]
