"""Conversion of Hugging Face ModernBERT checkpoints to MLX (installed as `anno_mlx.convert`)."""

from .converter import DTYPES, convert, verify_conversion

__all__ = ["DTYPES", "convert", "verify_conversion"]
