"""Outputs that cannot be written: every command says so in one line naming the path and the cause
(exit 2, no traceback), ``--out`` must be a folder, and a finished run's rerun writes nothing."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from bbam_lite.cli import main
from bbam_lite.utils.io import WriteError, atomic_save, atomic_write_json, writing

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


@pytest.fixture
def unwritable(monkeypatch):
    """``unwritable(folder, code)``: creating folders or opening files for writing under ``folder``
    fails with OS error ``code`` (what a read-only or full file system does); reading still works."""

    def make(folder: Path, code: int = errno.EROFS) -> Path:
        folder = Path(folder).resolve()
        mkdir, open_ = os.mkdir, os.open

        def inside(path) -> bool:
            p = Path(os.path.abspath(os.fsdecode(path)))
            return p == folder or folder in p.parents

        def fail(path):
            name = None if code == errno.ENOSPC else os.fsdecode(path)  # a full disk names no file
            raise OSError(code, os.strerror(code), name)

        def guarded_mkdir(path, *args, **kwargs):
            if inside(path):
                fail(path)
            return mkdir(path, *args, **kwargs)

        def guarded_open(path, flags, *args, **kwargs):
            if flags & _WRITE_FLAGS and inside(path):
                fail(path)
            return open_(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
        monkeypatch.setattr(os, "open", guarded_open)
        return folder

    return make


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(["--quiet", *argv])
    return code, capsys.readouterr().err.strip()


def _commands(data: Path, out: Path) -> dict[str, list[str]]:
    return {
        "train-detector": ["train-detector", "--data", str(data), "--profile", "smoke", "--iterations", "1"],
        "train-seg": [
            "train-seg", "--data", str(data), "--labels", "gt", "--task", "semantic", "--profile", "smoke",
            "--iterations", "1", "--init", "none", "--eval-images", "0",
        ],
        "pseudo-labels": ["pseudo-labels", "--data", str(data), "--method", "box", "--workers", "1"],
        "data synth": ["data", "synth", "--n-train", "2", "--n-val", "1", "--size", "64"],
    }  # fmt: skip


@pytest.mark.parametrize("command", ["train-detector", "train-seg", "pseudo-labels", "data synth"])
def test_out_that_is_a_file_must_be_a_folder(tiny_synth, tmp_path, capsys, command):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    argv = _commands(tiny_synth, afile)[command]
    code, err = _run([*argv, "--out", str(afile)], capsys)
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err
    assert f"--out {afile}: is a file; --out must be a folder" in err
    code, err = _run([*argv, "--out", str(afile / "run")], capsys)
    assert code == 2 and err.count("\n") == 0
    assert f"--out {afile / 'run'}: {afile} is a file, not a folder" in err
    assert afile.read_text() == "not a folder"


@pytest.mark.parametrize(
    "command, code_",
    [("train-seg", errno.EROFS), ("train-detector", errno.EACCES), ("pseudo-labels", errno.ENOSPC)],
)
def test_unwritable_out_is_one_line(tiny_synth, tmp_path, capsys, unwritable, command, code_):
    ro = unwritable(tmp_path / "ro", code_)
    code, err = _run([*_commands(tiny_synth, ro)[command], "--out", str(ro / "run")], capsys)
    assert code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"bbam-lite {command}: error: {ro / 'run'}")
    assert f"cannot write ({os.strerror(code_)})" in err


def test_data_synth_on_a_full_disk(tmp_path, capsys, unwritable):
    full = unwritable(tmp_path, errno.ENOSPC)
    code, err = _run([*_commands(tmp_path, full)["data synth"], "--out", str(full / "d")], capsys)
    assert code == 2 and err == f"bbam-lite data: error: {full / 'd'}: cannot write (No space left on device)"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder_by_permissions(tiny_synth, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        code, err = _run([*_commands(tiny_synth, ro)["pseudo-labels"], "--out", str(ro / "labels")], capsys)
    finally:
        ro.chmod(stat.S_IRWXU)
    assert code == 2 and err.count("\n") == 0 and str(ro / "labels") in err and "Permission denied" in err


def test_reading_errors_are_not_reported_as_write_failures(tmp_path):
    """Only an error about the output (or naming no file) becomes a WriteError."""
    with pytest.raises(FileNotFoundError):
        with writing(tmp_path / "out.json"):
            open(tmp_path / "missing-input.txt", encoding="utf-8")
    with pytest.raises(WriteError, match=r"out\.json: cannot write \(No space left on device\)"):
        with writing(tmp_path / "out.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_torch_save_on_a_full_disk_is_named(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError; the writer still says what happened."""
    import bbam_lite.utils.io as io

    def torch_like(tmp: Path) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(io, "_disk_full", lambda folder: True)
    with pytest.raises(WriteError, match=r"model\.pt: cannot write \(No space left on device\)"):
        atomic_save(tmp_path / "model.pt", torch_like)
    monkeypatch.setattr(io, "_disk_full", lambda folder: False)
    with pytest.raises(RuntimeError, match="unexpected pos"):  # any other failure is left as it is
        atomic_save(tmp_path / "model.pt", torch_like)
    assert list(tmp_path.iterdir()) == []


def test_identical_json_is_not_rewritten(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"a": [1, 2]}, indent=2)
    os.utime(path, ns=(0, 0))
    atomic_write_json(path, {"a": [1, 2]}, indent=2)
    assert path.stat().st_mtime_ns == 0
    atomic_write_json(path, {"a": [1, 3]}, indent=2)
    assert path.stat().st_mtime_ns != 0 and path.read_text() == '{\n  "a": [\n    1,\n    3\n  ]\n}'


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("command", ["train-seg", "train-detector", "pseudo-labels"])
def test_finished_rerun_writes_nothing(tiny_synth, tmp_path, capsys, unwritable, command):
    argv = [*_commands(tiny_synth, tmp_path)[command], "--out", str(tmp_path / "run")]
    code, err = _run(argv, capsys)
    assert code == 0, err
    before = _snapshot(tmp_path / "run")
    unwritable(tmp_path / "run")  # read-only media: any write would fail
    code, err = _run(argv, capsys)
    assert code == 0, err
    assert _snapshot(tmp_path / "run") == before


def test_damaged_model_of_a_finished_run_is_written_again(tiny_synth, tmp_path, capsys):
    import torch

    argv = [*_commands(tiny_synth, tmp_path)["train-seg"], "--out", str(tmp_path / "run")]
    assert _run(argv, capsys)[0] == 0
    model = tmp_path / "run" / "model.pt"
    good = torch.load(model, weights_only=True)["state_dict"]
    model.write_bytes(model.read_bytes()[:1000])  # truncated
    assert _run(argv, capsys)[0] == 0
    again = torch.load(model, weights_only=True)["state_dict"]
    assert good.keys() == again.keys() and all(torch.equal(good[k], again[k]) for k in good)
