"""Loaded NER models shared by everything one process serves (web app sessions, API requests).

A model is loaded once per name and every load and run happens on one worker thread: MLX keeps
its streams per thread (an array made on one thread cannot be evaluated on another), and a
laptop's cores (or one GPU) are better used by one batch than by two fighting ones.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, TypeVar

from .errors import AnnoError
from .ner import NER

T = TypeVar("T")


class ModelPool:
    """Models by name. With `allowed`, only those names (name -> model folder, hub id, or None
    for the built-in model) can be loaded, so that no caller can make the process read a path
    it was not started with."""

    def __init__(self, backend: str = "auto", device: Optional[str] = None, allowed: Optional[dict[str, Optional[str]]] = None):
        self.backend, self.device = backend, device
        self.allowed = None if allowed is None else dict(allowed)
        self._models: dict[str, NER] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anno-mlx-model")

    def get(self, name: str) -> NER:
        """The model called `name`, loaded on first use (on the worker thread)."""
        return self.call(self._load, name)

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """`fn(*args, **kwargs)` on the worker thread, after the calls queued before it, in the
        caller's context (so that, for example, the web app's progress bar follows tqdm there)."""
        return self._worker.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()

    def _load(self, name: str) -> NER:
        if name not in self._models:
            if self.allowed is not None and name not in self.allowed:
                raise AnnoError(f"model {name!r} is not served here; choose one of {', '.join(self.allowed)}")
            source = name if self.allowed is None else self.allowed[name]
            self._models[name] = NER.from_pretrained(source, backend=self.backend, device=self.device)
        return self._models[name]
