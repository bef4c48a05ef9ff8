"""GLiNER span models (zero-shot NER): `config.py` (ModelArgs from `gliner_config.json`),
`mlx_model.py` (the span model on an encoder of another family) and `torch_model.py` (its
PyTorch mirror). The pipeline that feeds them is `anno_mlx/zeroshot.py`."""

from .config import ModelArgs

HEADS = {"zero-shot": "GLiNER"}
TASK_KEYS: dict[str, tuple[str, ...]] = {}

__all__ = ["HEADS", "TASK_KEYS", "ModelArgs"]
