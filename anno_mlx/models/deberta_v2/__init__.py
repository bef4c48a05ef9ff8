"""DeBERTa-v2 and DeBERTa-v3 (model_type `deberta-v2`): `config.py` (ModelArgs), `positions.py`
(relative positions), `mlx_model.py` (the MLX network and heads) and `torch_model.py` (its
PyTorch mirror); the registry imports the last two when a model is built."""

from .config import ModelArgs

# The class for each head a user may ask for by its generic name.
HEADS = {
    "encoder": "DebertaV2Model",
    "token-classification": "DebertaV2ForTokenClassification",
    "masked-lm": "DebertaV2ForMaskedLM",
}
# Key prefixes of each task's own head: what a model trained for another task may lack.
TASK_KEYS = {"token-classification": ("classifier.",), "masked-lm": ("cls.", "lm_predictions.")}

__all__ = ["HEADS", "TASK_KEYS", "ModelArgs"]
