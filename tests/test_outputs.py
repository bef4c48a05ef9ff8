"""Outputs never destroy what they should not: `--force` replaces only folders anno-mlx wrote (or
empty ones), `ner -o` writes safely, a bad output path fails before the model runs, SIGTERM
cleans up like Ctrl-C, and a killed writer's leftovers are put right at the next run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from synthetic import write_conll

from anno_mlx import outputs
from anno_mlx.cli import Terminated, main, sigterm_as_interrupt
from anno_mlx.outputs import MARKER

TEXT = "Ada Lovelace worked with Charles Babbage in London."


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything under `root` (hidden names and links included, links not followed)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                found[str(path.relative_to(root))] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                found[str(path.relative_to(root))] = (
                    "file",
                    hashlib.sha256(path.read_bytes()).hexdigest(),
                    stat.S_IMODE(info.st_mode),
                )
            else:
                found[str(path.relative_to(root))] = ("other", stat.S_IFMT(info.st_mode))
    return found


def cli_error(capsys, *argv) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def src(make_checkpoint):
    return make_checkpoint(head="token-classification")


@pytest.fixture
def no_model(monkeypatch):
    """Any attempt to load a model fails the test: the checks must come first."""
    from anno_mlx import ner

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(ner.NER, "from_pretrained", refuse)


# -- convert / train --force ------------------------------------------------------------------


def project(root: Path) -> Path:
    """A project root: a config.json (not a model's), notes and sources."""
    folder = root / "it"
    (folder / "src").mkdir(parents=True)
    (folder / "config.json").write_text('{"name": "my project"}')
    (folder / "notes.txt").write_text("mine")
    (folder / "src" / "main.py").write_text("print('hi')")
    return folder


def a_file(root: Path) -> Path:
    (root / "it").write_text("a file, not a folder")
    return root / "it"


def a_link(root: Path) -> Path:
    (root / "elsewhere").mkdir()
    (root / "it").symlink_to(root / "elsewhere")
    return root / "it"


def our_model_with_notes(root: Path, model: Path) -> Path:
    shutil.copytree(model, root / "it")
    (root / "it" / "notes.txt").write_text("added by the user")
    return root / "it"


def a_legacy_model_with_a_subfolder(root: Path, model: Path) -> Path:
    """A model folder from before the marker (config.json provenance only), plus a user's folder."""
    shutil.copytree(model, root / "it")
    (root / "it" / MARKER).unlink()
    (root / "it" / "runs").mkdir()
    return root / "it"


REFUSED = [
    ("project root with a config.json", project, "not a model folder written by anno-mlx"),
    ("a file", a_file, "is a file, not a model folder"),
    ("a symbolic link", a_link, "is a symbolic link"),
    (
        "our model plus the user's notes",
        our_model_with_notes,
        "holds files anno-mlx did not write (notes.txt)",
    ),
    (
        "a legacy model plus a folder",
        a_legacy_model_with_a_subfolder,
        "holds files anno-mlx did not write (runs)",
    ),
]


@pytest.fixture(scope="module")
def converted(make_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ours") / "model"
    assert main(["convert", str(make_checkpoint(head="token-classification")), "-o", str(out)]) == 0
    return out


def build(make, root: Path, model: Path) -> Path:
    return make(root, model) if make.__code__.co_argcount == 2 else make(root)


@pytest.mark.parametrize("name, make, message", REFUSED, ids=[case[0] for case in REFUSED])
def test_convert_force_refuses_what_it_did_not_write(capsys, src, converted, tmp_path, name, make, message):
    target = build(make, tmp_path, converted)
    before = snapshot(tmp_path)
    line = cli_error(capsys, "convert", src, "-o", target, "--force")
    assert message in line
    assert snapshot(tmp_path) == before, "nothing was changed, and nothing was left behind"


@pytest.mark.parametrize("name, make, message", REFUSED, ids=[case[0] for case in REFUSED])
def test_train_force_refuses_what_it_did_not_write(capsys, converted, tmp_path, name, make, message):
    data = write_conll(tmp_path.parent / f"{tmp_path.name}-train.conll", 20, seed=1)
    target = build(make, tmp_path, converted)
    before = snapshot(tmp_path)
    line = cli_error(capsys, "train", "--model", converted, "--train", data, "-o", target, "--force")
    assert message in line
    assert snapshot(tmp_path) == before


def test_train_refuses_a_state_folder_it_did_not_write(capsys, converted, tmp_path):
    data = write_conll(tmp_path / "train.conll", 20, seed=1)
    (tmp_path / "out.state").mkdir()
    (tmp_path / "out.state" / "thesis.tex").write_text("years of work")
    before = snapshot(tmp_path)
    assert "not a model folder written by anno-mlx" in cli_error(
        capsys, "train", "--model", converted, "--train", data, "-o", tmp_path / "out", "--force"
    )
    assert snapshot(tmp_path) == before


def legacy(model: Path, root: Path) -> Path:
    shutil.copytree(model, root / "it")
    (root / "it" / MARKER).unlink()
    return root / "it"


REPLACED = [
    ("an empty folder", lambda model, root: (root / "it").mkdir() or root / "it"),
    ("a folder anno-mlx wrote", lambda model, root: Path(shutil.copytree(model, root / "it"))),
    ("a model folder from before the marker (config provenance)", legacy),
]


@pytest.mark.parametrize("name, make", REPLACED, ids=[case[0] for case in REPLACED])
def test_convert_force_replaces_empty_and_own_folders(capsys, src, converted, tmp_path, name, make):
    target = make(converted, tmp_path)
    assert "already exists; pass --force" in cli_error(capsys, "convert", src, "-o", target)
    assert main(["convert", str(src), "-o", str(target), "--force", "--dtype", "float16"]) == 0
    assert json.loads((target / "config.json").read_text())["anno_mlx"]["dtype"] == "float16"
    marker = json.loads((target / MARKER).read_text())
    assert marker["written_by"] == "anno-mlx" and sorted(os.listdir(target)) == sorted(
        marker["files"] + [MARKER]
    )
    assert sorted(os.listdir(tmp_path)) == ["it"], "no staging or old folder is left"


def test_train_force_replaces_its_own_output_and_state(capsys, converted, tmp_path):
    data = write_conll(tmp_path / "train.conll", 24, seed=1)
    out, state = tmp_path / "out", tmp_path / "out.state"
    run = [
        "train",
        "--model",
        str(converted),
        "--train",
        str(data),
        "-o",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]
    state.mkdir()  # a run interrupted before its first epoch ended: nothing to lose
    assert main(run) == 0
    assert (out / MARKER).is_file() and not state.exists()
    capsys.readouterr()
    assert "already exists; pass --force" in cli_error(capsys, *run)
    shutil.rmtree(out)
    state.mkdir()
    outputs.write_marker(state, "training state")
    (state / "state.json").write_text('{"epoch": 1}')  # a resumable run
    assert "holds an interrupted training run; pass --resume" in cli_error(capsys, *run)
    assert main(run + ["--force"]) == 0
    assert main(run + ["--force"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["out", "train.conll"]


def test_a_bad_output_place_fails_before_any_model_loads(capsys, src, tmp_path, monkeypatch):
    from anno_mlx import checkpoint

    monkeypatch.setattr(checkpoint, "load_folder", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "notes.txt").write_text("x")
    assert "notes.txt is not a folder" in cli_error(
        capsys, "convert", src, "-o", tmp_path / "notes.txt" / "model"
    )
    assert "does not take new files" in cli_error(capsys, "convert", src, "-o", "/proc/anno-mlx-model")
    data = write_conll(tmp_path / "train.conll", 20, seed=1)
    assert "does not take new files" in cli_error(
        capsys, "train", "--model", src, "--train", data, "-o", "/proc/anno-mlx-model"
    )


# -- a --force replace keeps the old destination; leftovers of killed runs ----------------------


def test_a_failed_second_rename_puts_the_old_destination_back(src, converted, tmp_path, monkeypatch):
    target = Path(shutil.copytree(converted, tmp_path / "it"))
    before = snapshot(tmp_path)
    real_rename = os.rename

    def rename(a, b):
        if Path(a).name.startswith(".it.tmp-"):
            raise OSError(28, "No space left on device")
        real_rename(a, b)

    monkeypatch.setattr(os, "rename", rename)
    code = main(["convert", str(src), "-o", str(target), "--force", "--dtype", "float16"])
    monkeypatch.undo()
    assert code == 2
    assert snapshot(tmp_path) == before


def test_a_kill_between_the_two_renames_is_undone_at_the_next_write_or_load(src, converted, tmp_path, capsys):
    pid = dead_pid()
    old = Path(shutil.copytree(converted, tmp_path / f".it.old-{pid}-0a1b2c3d"))
    staging = Path(shutil.copytree(converted, tmp_path / f".it.tmp-{pid}-k9x_z2ab"))
    expected = snapshot(old)
    (staging / "config.json").write_text("{}")  # the new one, never put in place

    from anno_mlx import NER

    NER.from_pretrained(tmp_path / "it")  # a load finds the destination where it was
    assert sorted(os.listdir(tmp_path)) == ["it"] and snapshot(tmp_path / "it") == expected

    # The same at the next write: the old destination is back, so --force is needed again.
    (tmp_path / "it").rename(old)
    staging.mkdir()
    assert "already exists; pass --force" in cli_error(capsys, "convert", src, "-o", tmp_path / "it")
    assert sorted(os.listdir(tmp_path)) == ["it"] and snapshot(tmp_path / "it") == expected


def test_stale_staging_of_dead_writers_is_removed_live_ones_and_others_kept(src, tmp_path):
    pid = dead_pid()
    (tmp_path / f".out.tmp-{pid}-abcdefgh").mkdir()  # a killed conversion's partial folder
    (tmp_path / f".out.tmp-{pid}-abcdefgh" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / f".out.old-{dead_pid()}-12345678").mkdir()  # an old folder whose removal was cut short
    (tmp_path / f".out.txt.tmp-{pid}-qwertyui").write_text("half")  # not this output's
    (tmp_path / f".out.tmp-{os.getpid()}-livelive").mkdir()  # a live writer's
    (tmp_path / ".out.tmp-notapid").mkdir()  # not our pattern
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / f".out.tmp-{pid}-linklink").symlink_to(victim)  # a link is never followed or removed
    assert main(["convert", str(src), "-o", str(tmp_path / "out")]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(
        [
            "out",
            f".out.txt.tmp-{pid}-qwertyui",
            f".out.tmp-{os.getpid()}-livelive",
            ".out.tmp-notapid",
            "victim",
            f".out.tmp-{pid}-linklink",
        ]
    )


def test_sigterm_cleans_up_like_ctrl_c(src, converted, tmp_path, monkeypatch, capsys):
    import mlx_lm.utils

    real_save = mlx_lm.utils.save_model

    def save_then_terminated(path, model, **kwargs):
        real_save(path, model, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(mlx_lm.utils, "save_model", save_then_terminated)
    handler = signal.getsignal(signal.SIGTERM)
    assert main(["convert", str(src), "-o", str(tmp_path / "new")]) == 143
    assert "terminated" in capsys.readouterr().err
    assert os.listdir(tmp_path) == [], "the partial staging folder was removed"

    target = Path(shutil.copytree(converted, tmp_path / "it"))
    before = snapshot(tmp_path)
    assert main(["convert", str(src), "-o", str(target), "--force"]) == 143
    assert snapshot(tmp_path) == before, "the old destination is untouched"
    assert signal.getsignal(signal.SIGTERM) == handler, "the previous SIGTERM handler is back"


def test_interrupts_wait_for_the_pair_of_renames():
    events = []
    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            with outputs.deferred_interrupts():
                os.kill(os.getpid(), signal.SIGTERM)
                events.append("second rename done")
    assert events == ["second rename done"]


def test_sigterm_in_a_real_process_leaves_no_staging(make_checkpoint, tmp_path):
    """A real `python -m anno_mlx convert`, terminated while its staging folder exists."""
    src = make_checkpoint(head="token-classification")
    ready = tmp_path / "ready"
    script = (
        "import sys, time, pathlib, mlx_lm.utils\n"
        "real = mlx_lm.utils.save_model\n"
        "def slow(path, model, **kw):\n"
        "    real(path, model, **kw)\n"
        f"    pathlib.Path({str(ready)!r}).write_text('x')\n"
        "    time.sleep(60)\n"
        "mlx_lm.utils.save_model = slow\n"
        "from anno_mlx.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "out" / "model"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-c", script, "convert", str(src), "-o", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(600):
            if ready.exists() or process.poll() is not None:
                break
            threading.Event().wait(0.1)
        assert ready.exists(), process.stderr.read() if process.poll() is not None else "never got ready"
        assert any(name.startswith(".model.tmp-") for name in os.listdir(out.parent))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        if process.poll() is None:
            process.kill()
    assert os.listdir(out.parent) == []


# -- ner -o -----------------------------------------------------------------------------------


@pytest.fixture
def report(tmp_path) -> Path:
    path = tmp_path / "report.txt"
    path.write_text(TEXT)
    return path


def ner_to(model: Path, target, *inputs) -> int:
    return main(
        ["ner", *(map(str, inputs or [TEXT])), "-m", str(model), "--format", "json", "-o", str(target)]
    )


def test_ner_writes_through_a_unique_temp_name_never_through_a_planted_link(converted, tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".out.txt.tmp").symlink_to(victim)  # the name the output used to go through
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: iter(["aaaaaaaa", "bbbbbbbb"]))
    (tmp_path / f".out.txt.tmp-{os.getpid()}-aaaaaaaa").symlink_to(victim)  # and the next "random" one
    assert ner_to(converted, tmp_path / "out.txt") == 0
    assert victim.read_text() == "precious"
    assert os.readlink(tmp_path / ".out.txt.tmp") == str(victim)
    assert os.readlink(tmp_path / f".out.txt.tmp-{os.getpid()}-aaaaaaaa") == str(victim)
    assert json.loads((tmp_path / "out.txt").read_text()) is not None
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["victim.txt", "out.txt", ".out.txt.tmp", f".out.txt.tmp-{os.getpid()}-aaaaaaaa"]
    )


def test_ner_keeps_the_mode_of_an_existing_file_and_gives_new_ones_the_usual_mode(converted, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text("old")
    secret.chmod(0o600)
    assert ner_to(converted, secret) == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.read_text() != "old"
    mask = os.umask(0o022)
    os.umask(mask)
    assert ner_to(converted, tmp_path / "new.json") == 0
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o666 & ~mask


def test_ner_follows_a_link_the_user_names_and_keeps_the_link(converted, tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "out.json").write_text("old")
    (tmp_path / "link.json").symlink_to(tmp_path / "real" / "out.json")
    assert ner_to(converted, tmp_path / "link.json") == 0
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real" / "out.json").read_text() != "old"
    assert sorted(os.listdir(tmp_path / "real")) == ["out.json"]


def test_ner_writes_a_pipe_in_place(converted, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    assert ner_to(converted, fifo) == 0
    reader.join(timeout=30)
    assert json.loads(received[0]) is not None
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["pipe"]


def test_ner_writes_a_character_device_in_place(converted, tmp_path):
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a private /dev/null
    except (OSError, AttributeError) as err:
        pytest.skip(f"cannot make a device node here ({err})")
    assert ner_to(converted, null) == 0
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.listdir(tmp_path) == ["null"]
    assert ner_to(converted, "/dev/null") == 0
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_ner_stdin_that_is_the_output_is_refused(report, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "anno_mlx", "ner", "-", "-o", str(report)],
        stdin=report.open("rb"),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert result.returncode == 2 and "is also an input (standard input)" in result.stderr
    assert report.read_text() == TEXT


def linked_input(report: Path) -> Path:
    os.link(report, report.parent / "hard.txt")
    return report.parent / "hard.txt"


NER_REFUSED = [
    ("the input itself", lambda report: ([report], report), "is also an input"),
    (
        "the input by another path",
        lambda report: (["-f", report], report.parent / "." / "report.txt"),
        "is also an input",
    ),
    ("the input through a link", lambda report: ([report], linked_input(report)), "is also an input"),
    (
        "a missing folder",
        lambda report: ([report], report.parent / "missing" / "x.json"),
        "does not exist; create it",
    ),
    ("a folder", lambda report: ([report], report.parent), "is a folder; give a file name"),
    (
        "a place that takes no files",
        lambda report: ([report], Path("/proc/anno-mlx.json")),
        "does not take new files",
    ),
    ("a file used as a folder", lambda report: ([report], report / "x.json"), "part of the path is a file"),
]


@pytest.mark.parametrize("name, make, message", NER_REFUSED, ids=[case[0] for case in NER_REFUSED])
def test_ner_output_checked_before_the_model_runs(capsys, no_model, report, name, make, message):
    inputs, target = make(report)
    before = snapshot(report.parent)
    line = cli_error(capsys, "ner", *inputs, "-o", target)
    assert message in line
    assert snapshot(report.parent) == before, "the input is unchanged and nothing was left behind"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_ner_refuses_a_read_only_output(capsys, no_model, report, tmp_path):
    target = tmp_path / "kept.json"
    target.write_text("keep me")
    target.chmod(0o444)
    assert "is read-only" in cli_error(capsys, "ner", report, "-o", target)
    assert target.read_text() == "keep me"
