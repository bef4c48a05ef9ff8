"""Where the web app's downloads live: one folder per browser session, removed when the session
ends and when the process exits, so that users' documents do not stay on disk.

The folders sit inside Gradio's own cache folder: Gradio serves files from there as they are,
where it would copy a file from anywhere else into its cache (a second copy nobody removes).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path


class SessionFolders:
    """A private folder under `parent` for each session's latest run."""

    def __init__(self, parent: Path):
        parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="anno-mlx-exports-", dir=parent))
        self._sessions: dict[str, Path] = {}
        self._lock = threading.Lock()

    def new_run(self, session: str) -> Path:
        """An empty folder for this session's newest run; the session's earlier runs are removed.

        Each run gets a fresh name, so a browser never gets an earlier run's file from its cache."""
        with self._lock:
            folder = self._session_folder(session)
            for old in folder.iterdir():
                shutil.rmtree(old, ignore_errors=True)
            return Path(tempfile.mkdtemp(prefix="run-", dir=folder))

    def clear(self, session: str) -> None:
        """Remove the session's files but keep it known (a run that found nothing to export)."""
        with self._lock:
            folder = self._sessions.get(session)
            if folder is not None:
                for old in folder.iterdir() if folder.is_dir() else ():
                    shutil.rmtree(old, ignore_errors=True)

    def close(self, session: str) -> None:
        """Remove everything the session wrote (its browser tab was closed)."""
        with self._lock:
            folder = self._sessions.pop(session, None)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close_all(self) -> None:
        """Remove every session's files (the app is shutting down)."""
        with self._lock:
            self._sessions.clear()
            shutil.rmtree(self.root, ignore_errors=True)

    def sessions(self) -> dict[str, Path]:
        """Open sessions and their folders."""
        with self._lock:
            return dict(self._sessions)

    def _session_folder(self, session: str) -> Path:
        folder = self._sessions.get(session)
        if folder is None or not folder.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder = self._sessions[session] = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
        return folder
