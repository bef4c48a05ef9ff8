"""The checkpoint's own `tokenizer.json`, read with `tokenizers`, keeping character offsets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import tokenizers

from .errors import AnnoError

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """A thin wrapper over `tokenizers.Tokenizer` that knows the model's padding id.

    Padding and truncation settings stored in tokenizer.json are switched off: the caller
    decides lengths (long documents are windowed, not cut).
    """

    def __init__(self, backend: tokenizers.Tokenizer, pad_token_id: Optional[int] = None):
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        self.pad_token_id = pad_token_id if pad_token_id is not None else _first_id(backend, "[PAD]", "<pad>")

    @classmethod
    def from_folder(cls, folder: str | Path, pad_token_id: Optional[int] = None) -> "Tokenizer":
        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise AnnoError(f"{folder} has no {TOKENIZER_FILE}; convert the model with `python -m anno_mlx convert`")
        try:
            return cls(tokenizers.Tokenizer.from_file(str(path)), pad_token_id)
        except Exception as err:
            raise AnnoError(f"{path} is not a readable tokenizer ({err})") from None

    def encode(self, text: str, add_special_tokens: bool = True) -> tokenizers.Encoding:
        """Token ids and `offsets` (Python string indices into `text`) of one text."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens)

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[tokenizers.Encoding]:
        return self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()


def _first_id(backend: tokenizers.Tokenizer, *tokens: str) -> int:
    for token in tokens:
        token_id = backend.token_to_id(token)
        if token_id is not None:
            return token_id
    return 0
