"""anno-mlx: named-entity recognition with ModernBERT on MLX."""

from ._blas import preload_openblas

preload_openblas()  # before anything below imports mlx

from .encoder import Encoder, EncoderArchitecture, EncoderConfig  # noqa: E402
from .entities import Entity  # noqa: E402
from .errors import AnnoError  # noqa: E402
from .loading import load  # noqa: E402
from .ner import NER, NEROptions  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "NER",
    "NEROptions",
    "AnnoError",
    "Encoder",
    "EncoderArchitecture",
    "EncoderConfig",
    "Entity",
    "load",
]
