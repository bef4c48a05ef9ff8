"""Loaded NER models shared by everything one process serves (web app sessions, API requests).

Every load and run happens on one worker thread: MLX keeps its streams per thread (an array made
on one thread cannot be evaluated on another), and a laptop's cores (or one GPU) are better used
by one batch than by two fighting ones. Models are kept by the folder they resolve to, so that
different spellings of one path share one copy, and only the most recently used few stay loaded.
"""

from __future__ import annotations

import contextvars
import gc
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, TypeVar

from .errors import AnnoError
from .loading import resolve_model
from .ner import NER

T = TypeVar("T")
DEFAULT_MAX_MODELS = 2


class ModelPool:
    """Models by name, at most `max_models` loaded at once (the least recently used is dropped
    first and reloaded when asked for again). With `allowed`, only those names (name -> model
    folder, hub id, or None for the built-in model) can be loaded, so that no caller can make the
    process read a path it was not started with; all of them then fit at once."""

    def __init__(
        self,
        backend: str = "auto",
        device: Optional[str] = None,
        allowed: Optional[dict[str, Optional[str]]] = None,
        max_models: int = DEFAULT_MAX_MODELS,
    ):
        if max_models < 1:
            raise AnnoError(f"max_models must be at least 1, not {max_models}")
        self.backend, self.device = backend, device
        self.allowed = None if allowed is None else dict(allowed)
        self.max_models = max(max_models, len(self.allowed or ()))
        self._models: OrderedDict[Path, NER] = OrderedDict()
        self._folders: dict[str, Path] = {}  # name as given -> the folder it resolved to
        self._worker_thread: Optional[threading.Thread] = None
        self._worker = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="anno-mlx-model", initializer=self._mark_worker
        )

    def get(self, name: str) -> NER:
        """The model called `name`, loaded on first use (on the worker thread)."""
        return self.call(self._load, name)

    def submit(self, fn: Callable[..., T], *args, **kwargs) -> "Future[T]":
        """`fn(*args, **kwargs)` queued for the worker thread in the caller's context (so that, for
        example, the web app's progress bar follows tqdm there); await it with asyncio.wrap_future."""
        return self._worker.submit(contextvars.copy_context().run, fn, *args, **kwargs)

    def call(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """`fn(*args, **kwargs)` on the worker thread, after the calls queued before it (in place
        when already there: waiting for itself would never end)."""
        if threading.current_thread() is self._worker_thread:
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def loaded(self) -> list[Path]:
        """The folders of the models held now, least recently used first."""
        return self.call(list, self._models)  # read where it is written

    def _mark_worker(self) -> None:
        self._worker_thread = threading.current_thread()

    def _source(self, name: str) -> Optional[str]:
        if self.allowed is None:
            return name
        if name not in self.allowed:
            raise AnnoError(f"model {name!r} is not served here; choose one of {', '.join(self.allowed)}")
        return self.allowed[name]

    def _load(self, name: str) -> NER:
        folder = self._folders.get(name)  # a name seen before costs no file-system lookups
        if folder not in self._models:
            folder = self._folders[name] = resolve_model(self._source(name)).resolve()
        if folder in self._models:
            self._models.move_to_end(folder)
            return self._models[folder]
        while len(self._models) >= self.max_models:
            self._models.popitem(last=False)
            gc.collect()  # free the dropped weights before the next model's are read
        self._models[folder] = NER.from_pretrained(
            self._source(name), backend=self.backend, device=self.device
        )  # errors name it as given
        return self._models[folder]
