"""`load(path_or_id) -> (model, tokenizer)`, in the manner of `mlx_lm.load`.

The checkpoint reader and the converter are imported inside the functions that use them, after
`runners.choose` has picked the engine: they import MLX, which must not load before that choice
(see `runners.choose`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from .errors import AnnoError
from .hub import is_hub_id
from .outputs import recover
from .runners import Runner, choose, make_runner
from .tokenizer import TOKENIZER_FILE, Tokenizer

DEFAULT_MODEL = Path(__file__).resolve().parent / "default_model"


def resolve_model(path_or_id: Optional[str | Path]) -> Path:
    """A local model folder for `path_or_id` (None: the embedded default model).

    A hub id is converted on first use (`convert.convert_hub_model`) and read from its converted
    folder afterwards, with no network.
    """
    if path_or_id is None:
        if not (DEFAULT_MODEL / "config.json").is_file():
            raise AnnoError(
                f"the embedded default model is missing from {DEFAULT_MODEL}; reinstall anno-mlx or pass a model"
            )
        return DEFAULT_MODEL
    path = Path(path_or_id).expanduser()
    if not path.exists():
        recover(path)  # a folder a killed `--force` replace left moved aside comes back
    if path.exists():
        return path
    name = str(path_or_id)
    if not is_hub_id(name):
        raise AnnoError(
            f"model {name} does not exist; give a model folder or a hub id like answerdotai/ModernBERT-base"
        )
    from .convert import convert_hub_model

    return convert_hub_model(name)


def load_runner(
    path_or_id: Optional[str | Path] = None,
    head: Optional[str] = None,
    backend: str = "mlx",
    device: Optional[str] = None,
    dtype: Optional[str] = None,
) -> tuple[Runner, Optional[Tokenizer]]:
    """A runner (`anno_mlx.runners`) for the model in a converted folder, a Hugging Face folder
    or a hub id (None: the embedded default model), and its tokenizer (None when the folder has
    none). `head` overrides the class from config.json: "encoder", "token-classification" or
    "masked-lm" (for example "encoder" to get hidden states from a masked-LM checkpoint)."""
    chosen = choose(backend, device)
    from .checkpoint import load_folder

    folder = resolve_model(path_or_id)
    model, config = load_folder(folder, head)
    tokenizer = None
    if (folder / TOKENIZER_FILE).is_file():
        tokenizer = Tokenizer.from_folder(folder, config.get("pad_token_id"))
        tokenizer.check_fits(model.args.vocab_size, folder, getattr(model.args, "unused_tokens", ()))
    return make_runner(model, chosen, dtype), tokenizer


def load(
    path_or_id: Optional[str | Path] = None,
    head: Optional[str] = None,
    backend: str = "mlx",
    device: Optional[str] = None,
    dtype: Optional[str] = None,
):
    """Model and tokenizer, in the manner of `mlx_lm.load` (arguments as for `load_runner`).

    The model is called as `model(input_ids, attention_mask)` on `[batch, length]` arrays;
    `backend="torch"` (or "auto") gives the PyTorch mirror of the same model, on `device`.
    """
    runner, tokenizer = load_runner(path_or_id, head, backend, device, dtype)
    return runner.model, tokenizer
