"""Conversion of Hugging Face checkpoints (every family in `anno_mlx.models`) to MLX (installed as `anno_mlx.convert`)."""

from anno_mlx.convert.converter import DTYPES, convert, convert_hub_model, verify_conversion

__all__ = ["DTYPES", "convert", "convert_hub_model", "verify_conversion"]
