"""The training state beside the output (`OUT.state/`): after every epoch the step's weights
and optimizer (`Step.save_state`), the epoch, the best figure so far and the backend, with the
run's tokenizer, so that `--resume` continues an interrupted run and ends where the
uninterrupted run would have. Batch order and masks depend only on the seed, the epoch and the
batch (and, for masks, the padded width, which differs on CUDA)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import AnnoError
from ..outputs import check_output_folder, check_replaceable, write_marker
from ..tokenizer import TOKENIZER_FILE, Tokenizer
from .steps import Step


def state_folder(out: Path) -> Path:
    """Where the training state for the output folder `out` lives."""
    return out.parent / f"{out.name}.state"


def resumed_state(state_dir: Path, step: Step, backend: str, epochs: int) -> tuple[int, dict]:
    """The epoch to continue from and the best so far, from a state folder that may be damaged
    (then a one-line error; the state is left as it is)."""
    try:
        state = json.loads((state_dir / "state.json").read_text(encoding="utf-8"))
        first_epoch, best, written_by = state["epoch"], state["best"], state.get("backend", "mlx")
        if (
            not isinstance(first_epoch, int)
            or not isinstance(best, dict)
            or not {"figure", "epoch"} <= best.keys()
        ):
            raise ValueError("unexpected fields")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise AnnoError(
            f"the training state in {state_dir} is damaged ({err}); start again without --resume"
        ) from None
    if written_by != backend:
        raise AnnoError(
            f"{state_dir} was written by the {written_by} backend; resume with --backend {written_by}"
        )
    if first_epoch >= epochs:
        raise AnnoError(
            f"{state_dir} has already done {first_epoch} epochs; --epochs {epochs} leaves nothing to resume (raise --epochs)"
        )
    try:
        step.load_state(state_dir)
    except Exception as err:  # safetensors/torch.load report damage with their own exception types
        raise AnnoError(
            f"the training state in {state_dir} is damaged ({type(err).__name__}); start again without --resume"
        ) from None
    return first_epoch, best


def check_outputs(out: Path, state_dir: Path, force: bool, resume: bool) -> None:
    """Before any work: an existing output (or an interrupted run's state) is replaced only with
    --force (or continued with --resume) and only when anno-mlx wrote it."""
    if resume and not (state_dir / "state.json").is_file():
        raise AnnoError(f"nothing to resume: {state_dir} holds no training state")
    check_output_folder(out, force or resume, "pass --force to replace it (or --resume to continue)")
    if not resume and os.path.lexists(state_dir):
        check_replaceable(state_dir)
        if (
            state_dir / "state.json"
        ).is_file() and not force:  # a state before its first epoch ended holds nothing to lose
            raise AnnoError(
                f"{state_dir} holds an interrupted training run; pass --resume to continue it or --force to start afresh"
            )


def new_state_folder(state_dir: Path, tokenizer: Tokenizer) -> None:
    """A training-state folder holding only the run's tokenizer (a replaceable old one removed),
    marked as ours."""
    if os.path.lexists(state_dir):
        check_replaceable(state_dir)
        shutil.rmtree(state_dir)
    try:
        state_dir.mkdir(parents=True)
    except OSError as err:
        raise AnnoError(f"cannot write {state_dir}: {err.strerror}") from None
    write_marker(state_dir, "training state")
    tokenizer.inner.save(str(state_dir / TOKENIZER_FILE))


def save_epoch_state(state_dir: Path, step: Step, epoch: int, best: dict, backend: str) -> None:
    """The state after `epoch` (counted from 1), each file replaced whole."""
    step.save_state(state_dir)
    (state_dir / "state.json.tmp").write_text(json.dumps({"epoch": epoch, "best": best, "backend": backend}))
    (state_dir / "state.json.tmp").replace(state_dir / "state.json")
