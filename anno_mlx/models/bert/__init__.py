"""BERT: `config.py` (ModelArgs), `mlx_model.py` (the MLX network and heads) and
`torch_model.py` (its PyTorch mirror); the registry imports the last two when a model is built."""

from .config import ModelArgs

# The class for each head a user may ask for by its generic name.
HEADS = {
    "encoder": "BertModel",
    "token-classification": "BertForTokenClassification",
    "masked-lm": "BertForMaskedLM",
}
# Key prefixes of each task's own head: what a model trained for another task may lack.
TASK_KEYS = {"token-classification": ("classifier.",), "masked-lm": ("cls.",)}

__all__ = ["HEADS", "TASK_KEYS", "ModelArgs"]
