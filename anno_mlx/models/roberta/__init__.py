"""RoBERTa, XLM-RoBERTa and CamemBERT (one network): `config.py` (ModelArgs), `mlx_model.py`
(the MLX network and heads, on BERT's layers) and `torch_model.py` (its PyTorch mirror); the
registry imports the last two when a model is built."""

from .config import ModelArgs

# The class for each head a user may ask for by its generic name.
HEADS = {
    "encoder": "RobertaModel",
    "token-classification": "RobertaForTokenClassification",
    "masked-lm": "RobertaForMaskedLM",
}
# Key prefixes of each task's own head: what a model trained for another task may lack.
TASK_KEYS = {"token-classification": ("classifier.",), "masked-lm": ("lm_head.",)}

__all__ = ["HEADS", "TASK_KEYS", "ModelArgs"]
