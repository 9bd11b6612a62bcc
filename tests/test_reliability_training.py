"""Faults during `segtrain fit`: a full disk and a kill in the middle of a checkpoint write.

(SIGKILL at random moments, SIGINT, resume mismatches and NaN losses are in test_fit.py.)
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import trainer.checkpoint as checkpoint_module
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.config import TrainConfig
from trainer.fit import fit
from trainer.runlog import read_metrics_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--width", "4", "--img-size", "32", "--batch-size", "4", "--quiet"]


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def _every_checkpoint_loads(folder: Path) -> dict[str, int]:
    return {p.name: load_checkpoint(p)["epoch"] for p in sorted(folder.glob("*.pth"))}


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_writing_second_last_pth(monkeypatch) -> None:
    """The second write of last.pth gets 4 KiB onto the disk, then ENOSPC."""
    real_atomic_write = checkpoint_module.atomic_write
    calls = []

    def disk_full(path, write):
        if Path(path).name == "last.pth":
            calls.append(path)
            if len(calls) == 2:

                def half_then_enospc(handle):
                    handle.write(b"\0" * 4096)
                    raise _enospc()

                return real_atomic_write(path, half_then_enospc)
        return real_atomic_write(path, write)

    monkeypatch.setattr(checkpoint_module, "atomic_write", disk_full)


def _fail_fsyncing_second_last_pth(monkeypatch) -> None:
    """The whole second last.pth is written, but its fsync reports ENOSPC (delayed allocation)."""
    real_fsync = os.fsync
    calls = []

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".last.pth."):
            calls.append(fd)
            if len(calls) == 2:
                raise _enospc()
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.slow
@pytest.mark.parametrize(
    "inject",
    [
        _fail_writing_second_last_pth,
        pytest.param(
            _fail_fsyncing_second_last_pth,
            marks=pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc"),
        ),
    ],
    ids=["write", "fsync"],
)
def test_full_disk_during_a_checkpoint_write_is_one_clear_error(
    tiny_dataset, tmp_path, monkeypatch, inject
):
    """ENOSPC while epoch 2's last.pth is written: exit 1, one Error line, epoch 1 kept."""
    out = tmp_path / "run"
    args = ["fit", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "2", *TINY_ARGS]
    with monkeypatch.context() as patch:
        inject(patch)
        result = CliRunner().invoke(main, args)

    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [
        f"Error: {out / 'last.pth'}: no space left on device (files written before are intact; "
        "free some space, then continue the run with --resume)"
    ]
    assert "Traceback" not in result.output
    assert _every_checkpoint_loads(out) == {"best.pth": 1, "last.pth": 1}
    assert _temporaries(out) == []

    resumed = CliRunner().invoke(main, ["fit", "--out", str(out), "--resume", "--quiet"])
    assert resumed.exit_code == 0, resumed.output  # space freed: the run finishes
    assert load_checkpoint(out / "last.pth")["epoch"] == 2
    assert [row["epoch"] for row in read_metrics_csv(out / "metrics.csv")] == [1, 2]


# A `segtrain fit` whose second last.pth write stops half way (and tells the test so), so
# that the test can SIGKILL it while the temporary file is on disk and incomplete.
_HANGING_WRITER = """
import io, os, sys, time
from pathlib import Path
import trainer.checkpoint as ckpt
from trainer.cli import main

marker, real, last_writes = Path(sys.argv[1]), ckpt.atomic_write, []

def half_then_hang(write):
    def partial(handle):
        buffer = io.BytesIO()
        write(buffer)
        data = buffer.getvalue()
        handle.write(data[: len(data) // 2])
        handle.flush()
        Path(f"{marker}.part").write_text(str(len(data)))
        os.replace(f"{marker}.part", marker)
        time.sleep(120)
    return partial

def hanging(path, write):
    if Path(path).name == "last.pth":
        last_writes.append(path)
        if len(last_writes) == 2:
            return real(path, half_then_hang(write))
    return real(path, write)

ckpt.atomic_write = hanging
main(sys.argv[2:])
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_then_resume(tiny_dataset, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "writing"
    fit_args = ["fit", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "2"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HANGING_WRITER, str(marker), *fit_args, *TINY_ARGS],
        env=env,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the writer never reached the checkpoint (rc {proc.poll()})"
        (partial,) = _temporaries(out)
        assert partial.name.startswith(".last.pth.")
        assert 0 < partial.stat().st_size < int(marker.read_text())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    assert _every_checkpoint_loads(out) == {"best.pth": 1, "last.pth": 1}
    (out / "notes.tmp").write_text("mine")  # not a temporary file of atomic_open
    resumed = fit(TrainConfig(out=str(out), resume=True), given={}, progress=False)
    assert resumed.epochs_done == 2
    assert load_checkpoint(out / "last.pth")["epoch"] == 2
    assert set(_every_checkpoint_loads(out)) == {"best.pth", "last.pth"}
    assert [row["epoch"] for row in read_metrics_csv(out / "metrics.csv")] == [1, 2]
    assert _temporaries(out) == [], "the killed run's temporary file was left behind"
    assert (out / "notes.tmp").read_text() == "mine"
