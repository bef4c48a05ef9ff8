"""Outputs that never destroy what they should not.

Model folders (convert, train) are built in a hidden sibling `.DST.tmp-PID-XXXXXXXX` and renamed
into place; `--force` replaces only a folder anno-mlx wrote (it holds the `.anno-mlx` marker, or,
for folders written before the marker existed, a `config.json` with our `anno_mlx` provenance
block) or an empty one, and moves the old one aside (`.DST.old-PID-XXXXXXXX`) until the new one
is in place. The PID in those names lets the next run tell a dead writer's leftovers from a live
writer's work: `recover` restores a destination a kill left missing and removes the rest.

Text outputs (`ner -o`) go through a unique temp file beside the target (`mkstemp`: `O_EXCL`,
so a planted link is never followed), keep an existing file's mode, and are renamed over it;
devices and pipes are written in place.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shutil
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .errors import AnnoError

MARKER = ".anno-mlx"
WRITER = "anno-mlx"
# Files of a model folder written before the marker existed (config.json carries our provenance).
LEGACY_MODEL_FILES = (
    "config.json",
    "model*.safetensors",
    "*.safetensors.index.json",
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "*.model",
)


# -- folders anno-mlx wrote -----------------------------------------------------------------


def write_marker(folder: Path, kind: str, files: Optional[list[str]] = None) -> None:
    """Mark `folder` as written by anno-mlx; `files` are the names it may hold (None: anything,
    for folders whose content changes, like a training state)."""
    marker = {"written_by": WRITER, "kind": kind, **({"files": sorted(files)} if files is not None else {})}
    (Path(folder) / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _json_object(path: Path) -> Optional[dict]:
    """The JSON object in a small regular file (never through a link), else None."""
    try:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > 1 << 20:
            return None
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def written_by_us(folder: Path) -> bool:
    """Whether anno-mlx wrote `folder`: our marker, or (a model folder written before the marker
    existed) a config.json carrying the `anno_mlx` provenance block convert and train record."""
    marker = _json_object(Path(folder) / MARKER)
    if marker is not None:
        return marker.get("written_by") == WRITER
    config = _json_object(Path(folder) / "config.json")
    provenance = config.get("anno_mlx") if config else None
    return isinstance(provenance, dict) and "format" in provenance


def foreign_entries(folder: Path) -> list[str]:
    """Names in a folder anno-mlx wrote that it did not write (a user's notes put there later)."""
    folder = Path(folder)
    names = set(os.listdir(folder)) - {MARKER}
    marker = _json_object(folder / MARKER)
    if marker is not None:
        files = marker.get("files")
        return sorted(names - set(files)) if isinstance(files, list) else []
    return sorted(
        name
        for name in names
        if not (folder / name).is_file()
        or (folder / name).is_symlink()
        or not any(fnmatch.fnmatchcase(name, pattern) for pattern in LEGACY_MODEL_FILES)
    )


def check_replaceable(dst: Path) -> None:
    """Refuse to replace anything but an empty folder or one anno-mlx wrote (and holds nothing else)."""
    dst = Path(dst)
    if dst.is_symlink():
        raise AnnoError(
            f"{dst} is a symbolic link; refusing to replace it; give the folder itself or choose another output folder"
        )
    if not dst.is_dir():
        raise AnnoError(
            f"{dst} exists and is a file, not a model folder; refusing to replace it; choose another output folder"
        )
    try:
        if not any(dst.iterdir()):
            return
        if not written_by_us(dst):
            raise AnnoError(
                f"{dst} exists and is not a model folder written by anno-mlx (no {MARKER} marker); refusing to "
                f"replace it even with --force; choose another output folder or empty this one"
            )
        foreign = foreign_entries(dst)
    except OSError as err:
        raise AnnoError(f"cannot read {dst}: {err.strerror}") from None
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise AnnoError(
            f"{dst} holds files anno-mlx did not write ({shown}); move them out or choose another output folder"
        )


def check_output_folder(dst: Path, force: bool, exists_hint: str = "pass --force to replace it") -> None:
    """Before any work on a folder output: bring back what a killed run moved aside, refuse
    what anno-mlx may not replace (even with `force`), ask for `force` to replace the rest, and
    make sure the place takes new files."""
    recover(dst)
    if os.path.lexists(dst):
        check_replaceable(dst)
        if not force:
            raise AnnoError(f"{dst} already exists; {exists_hint}")
    check_writable_place(dst)


def check_writable_place(dst: Path) -> None:
    """Fail now, not after the model has loaded, when `dst` cannot be created: the nearest
    existing folder above it must take a new file (probed, which also catches read-only,
    immutable and /proc folders that permission bits do not show)."""
    above = _absolute(dst).parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise AnnoError(f"cannot write {dst}: {above} is not a folder; choose another output")
    _probe(above, dst)


def _probe(folder: Path, dst: Path) -> None:
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{_absolute(dst).name}.tmp-{os.getpid()}-", suffix="", dir=folder
        )
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise AnnoError(
            f"cannot write {dst}: {folder} does not take new files ({err.strerror}); choose another output"
        ) from None


def _absolute(path: Path) -> Path:
    """Absolute and normalised without following links (so `.` has a name and a parent)."""
    return Path(os.path.abspath(Path(path).expanduser()))


# -- writing and replacing a folder -----------------------------------------------------------


@contextmanager
def staging_folder(dst: Path) -> Iterator[Path]:
    """A new hidden sibling of `dst` to build it in, named with our PID; removed on the way out
    unless `replace_folder` moved it into place."""
    dst = _absolute(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-{os.getpid()}-", dir=dst.parent))
        os.chmod(staging, 0o777 & ~_umask())  # a folder like any other, not mkdtemp's 0700
    except OSError as err:
        raise AnnoError(f"cannot write {dst}: {err.strerror}") from None
    try:
        yield staging
    finally:
        _remove(staging)


def replace_folder(staging: Path, dst: Path) -> None:
    """Rename `staging` to `dst`. An existing `dst` is moved aside first and deleted only once
    the new one is in place; SIGINT/SIGTERM wait for the two renames, and a kill between them is
    undone by the next `recover(dst)`."""
    dst = _absolute(dst)
    old = dst.parent / f".{dst.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    placed = False
    try:
        with deferred_interrupts():
            moved = os.path.lexists(dst)
            if moved:
                os.rename(dst, old)
            try:
                os.rename(staging, dst)
                placed = True
            except OSError:
                if moved:
                    os.rename(old, dst)
                raise
    except OSError as err:
        raise AnnoError(f"cannot write {dst}: {err.strerror}") from None
    finally:
        if placed:
            _remove(old)


def recover(dst: Path) -> None:
    """Undo what a killed writer of `dst` left. Only names of our own pattern whose PID is no
    longer alive are touched: if `dst` is missing and the writer was killed between its two
    renames (its moved-aside `.DST.old-PID-*` and its staging `.DST.tmp-PID-*` both remain), the
    old `dst` is put back; every other such leftover (partial staging, an old folder whose
    removal was cut short, a temp file) is removed."""
    dst = _absolute(dst)
    pattern = re.compile(rf"\.{re.escape(dst.name)}\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-z_]{{8}}")
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return
    stale: dict[tuple[str, int], list[Path]] = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match and not _alive(int(match["pid"])) and not (dst.parent / name).is_symlink():
            stale.setdefault((match["kind"], int(match["pid"])), []).append(dst.parent / name)
    if not os.path.lexists(dst):
        for (kind, pid), olds in stale.items():
            if kind == "old" and ("tmp", pid) in stale and len(olds) == 1:
                try:
                    os.rename(olds[0], dst)
                except OSError:
                    continue
                stale[kind, pid] = []
                break
    for paths in stale.values():
        for path in paths:
            _remove(path)


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows, os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or a platform without signal 0: assume alive
        return True
    return True


def _remove(path: Path) -> None:
    """Remove our own temp file or folder (never through a link)."""
    try:
        if path.is_symlink() or not path.exists():
            return
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except OSError:
        pass


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (other threads may be
    creating files), else set and reset."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (then deliver them), so a pair of renames is
    never cut in half by Ctrl-C. Signals reach Python's main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:  # None: a handler not set from Python, left alone
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            signal.raise_signal(caught[0])


# -- text files ---------------------------------------------------------------------------------


def check_text_output(path: Path, inputs: Iterable[Path] = (), stdin: bool = False) -> None:
    """Before the model runs: `path` is not a folder, not one of the `inputs` (or standard input
    when `stdin`), and its folder exists and takes new files. Devices and pipes pass as they are."""
    info = _stat(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise AnnoError(f"output {path} is a folder; give a file name")
    if info is not None and not stat.S_ISREG(info.st_mode):
        return  # a device or pipe, written in place
    if info is not None:
        same = [str(p) for p in inputs if (other := _stat(p)) is not None and os.path.samestat(info, other)]
        if stdin and _same_as_stdin(info):
            same.append("standard input")
        if same:
            raise AnnoError(f"output {path} is also an input ({same[0]}); write the output to another file")
        if not os.access(path, os.W_OK):
            raise AnnoError(f"output {path} is read-only; make it writable or choose another file")
    folder = Path(os.path.realpath(path)).parent
    if not folder.is_dir():
        raise AnnoError(
            f"cannot write {path}: folder {folder} does not exist; create it or choose another output"
        )
    _probe(folder, Path(os.path.realpath(path)))


def write_text_file(path: Path, chunks: Iterable[str]) -> None:
    """Write `chunks` to `path` so a failure leaves the old file (or none): through a unique temp
    file beside the real target (the link's target when `path` is a link), with the existing
    file's mode, renamed over it. Devices and pipes (e.g. /dev/null) are written in place."""
    info = _stat(path)
    try:
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise AnnoError(f"output {path} is a folder; give a file name")
        if info is not None and not stat.S_ISREG(info.st_mode):
            with open(path, "w", encoding="utf-8") as out:
                out.writelines(chunks)
            return
        target = Path(os.path.realpath(path))
        recover(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-{os.getpid()}-", suffix="", dir=target.parent)
        placed = False
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                os.fchmod(out.fileno(), stat.S_IMODE(info.st_mode) if info is not None else 0o666 & ~_umask())
                out.writelines(chunks)
            os.replace(tmp, target)
            placed = True
        finally:
            if not placed:
                os.unlink(tmp)
    except OSError as err:
        raise AnnoError(f"cannot write {path}: {err.strerror}") from None


def _stat(path: Path) -> Optional[os.stat_result]:
    """`os.stat` through links; None when nothing is there."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise AnnoError(f"cannot use {path}: part of the path is a file, not a folder") from None
    except OSError as err:
        raise AnnoError(f"cannot use {path}: {err.strerror}") from None


def _same_as_stdin(info: os.stat_result) -> bool:
    try:
        return os.path.samestat(info, os.fstat(0))
    except OSError:
        return False
