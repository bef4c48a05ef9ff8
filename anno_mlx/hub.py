"""Hub ids: download through huggingface_hub's cache, and where converted models live."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import AnnoError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt", "*.model"]


def is_hub_id(name: str) -> bool:
    """A string that is not an existing path but could name a hub repository (the hub's own
    rules: each part starts and ends with a letter or digit, no `--` or `..`, 96 characters)."""
    if (
        Path(name).exists()
        or not HUB_ID.match(name)
        or name.endswith((".json", ".safetensors"))
        or len(name) > 96
    ):
        return False
    return all(
        part[0].isalnum() and part[-1].isalnum() and "--" not in part and ".." not in part
        for part in name.split("/")
    )


def models_dir() -> Path:
    """Converted models from hub ids: `$ANNO_MLX_HOME`, else `$HF_HOME/anno-mlx`."""
    from huggingface_hub import constants

    return Path(os.environ.get("ANNO_MLX_HOME") or Path(constants.HF_HOME) / "anno-mlx")


def converted_dir(repo_id: str) -> Path:
    """The folder a hub id converts into, named like the hub cache's `models--org--name`."""
    from huggingface_hub.file_download import repo_folder_name

    return models_dir() / repo_folder_name(repo_id=repo_id, repo_type="model")


def local_models() -> list[Path]:
    """The converted models in `models_dir()` (folders with a config and a tokenizer), sorted, so
    that model pickers need not know how that folder is laid out."""
    root = models_dir()
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if (p / "config.json").is_file() and (p / "tokenizer.json").is_file()
    )


def download(repo_id: str) -> Path:
    """A local snapshot of `repo_id` (config, tokenizer, weights) from huggingface_hub's cache,
    downloading when allowed. With HF_HUB_OFFLINE=1 only the cache is used."""
    from huggingface_hub import errors, snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=DOWNLOAD_PATTERNS))
    except errors.LocalEntryNotFoundError:
        raise AnnoError(
            f"{repo_id} is neither a local folder nor in the Hugging Face cache, and downloads are off "
            f"(HF_HUB_OFFLINE=1); download it once with network, or give an existing model folder"
        ) from None
    except (errors.RepositoryNotFoundError, errors.GatedRepoError, errors.RevisionNotFoundError) as err:
        raise AnnoError(f"{repo_id} cannot be downloaded: {str(err).splitlines()[0]}") from None
    except errors.HFValidationError:
        raise AnnoError(f"{repo_id!r} is neither an existing folder nor a valid hub id") from None
    except (OSError, errors.HfHubHTTPError) as err:
        raise AnnoError(
            f"downloading {repo_id} failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        ) from None


def hub_config(repo_id: str) -> dict:
    """`config.json` of hub repository `repo_id` (through the cache; downloading when allowed):
    a GLiNER upload names its encoder this way instead of embedding its config."""
    import json

    from huggingface_hub import errors, hf_hub_download

    try:
        path = hf_hub_download(repo_id, "config.json")
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except errors.LocalEntryNotFoundError:
        raise AnnoError(
            f"the model's encoder {repo_id} is not in the Hugging Face cache and downloads are off "
            f"(HF_HUB_OFFLINE=1); convert the model once with network"
        ) from None
    except (OSError, ValueError, errors.HfHubHTTPError) as err:
        raise AnnoError(f"reading the config of the model's encoder {repo_id} failed: {err}") from None
    if not isinstance(config, dict):
        raise AnnoError(f"the config of the model's encoder {repo_id} is not a JSON object")
    return config
