"""Conversion of Hugging Face checkpoints (every family in `anno_mlx.models`) to MLX, and the
average of fine-tuned runs (installed as `anno_mlx.convert`)."""

from anno_mlx.convert.average import average
from anno_mlx.convert.converter import DTYPES, convert, convert_hub_model, verify_conversion

__all__ = ["DTYPES", "average", "convert", "convert_hub_model", "verify_conversion"]
