"""`segtrain fit` / `evaluate` end to end on tiny generated data."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from trainer import load_model
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.config import TrainConfig
from trainer.engine import TrainingDiverged
from trainer.fit import TrainingRun, fit

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--width", "4", "--img-size", "32", "--batch-size", "4", "--quiet"]


def tiny_config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), width=4, img_size=32, batch_size=4, epochs=2)
    base.update(kw)
    return TrainConfig(**base)


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_fit_writes_a_complete_run(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    result = run_cli(
        "fit", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "2", *TINY_ARGS
    )
    assert result.exit_code == 0, result.output
    assert "done: 2 epoch(s)" in result.output
    for name in (
        "best.pth",
        "last.pth",
        "metrics.csv",
        "config.json",
        "curves.png",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) >= {
        "train_loss",
        "val_loss",
        "acc",
        "dice",
        "iou",
        "map",
        "lr",
        "seconds",
        "images_per_s",
    }
    ckpt = load_checkpoint(out / "last.pth")
    assert ckpt["epoch"] == 2 and ckpt["arch"] == "unet" and ckpt["input_size"] == [32, 32]
    assert {"optimizer", "scheduler", "scaler", "rng"} <= set(ckpt)
    model = load_model(out / "best.pth")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    assert json.loads((out / "config.json").read_text())["width"] == 4


RECIPES = {
    "default": {},
    "original": {"schedule": "plateau", "ema": False, "optimizer": "adam", "weight_decay": 0.0},
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_interrupted_then_resumed_run_ends_with_the_same_weights(
    tiny_dataset, tmp_path, monkeypatch, recipe
):
    kw = dict(epochs=3, aug="standard", warmup_epochs=1, **RECIPES[recipe])
    straight = fit(tiny_config(tiny_dataset, tmp_path / "a", **kw), progress=False)
    assert straight.epochs_done == 3

    real_train_epoch = TrainingRun.train_epoch

    def interrupted_at_epoch_2(run, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_train_epoch(run, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(TrainingRun, "train_epoch", interrupted_at_epoch_2)
        stopped = fit(tiny_config(tiny_dataset, tmp_path / "b", **kw), progress=False)
    assert stopped.interrupted and stopped.epochs_done == 1
    resumed = fit(tiny_config(tiny_dataset, tmp_path / "b", resume=True, **kw), progress=False)
    assert resumed.epochs_done == 3
    a, b = (load_checkpoint(tmp_path / run / "last.pth") for run in ("a", "b"))
    weights = ["model", "raw_model"] if recipe == "default" else ["model"]
    for name in weights:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=0, atol=0, msg=key)
    assert a["scheduler"] == b["scheduler"] and a.get("ema") == b.get("ema")
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]


def test_more_epochs_on_resume_replan_the_cosine(tiny_dataset, tmp_path):
    fit(tiny_config(tiny_dataset, tmp_path, epochs=2, warmup_epochs=0), progress=False)
    first = [float(r["lr"]) for r in csv.DictReader((tmp_path / "metrics.csv").open())]
    fit(
        tiny_config(tiny_dataset, tmp_path, epochs=6, warmup_epochs=0, resume=True),
        given={"epochs": 6},
        progress=False,
    )
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    lrs = [float(r["lr"]) for r in rows]
    assert lrs[:2] == first and len(lrs) == 6
    # the 2-epoch plan had reached its floor; the 6-epoch one continues from its own epoch 2
    assert lrs[2] > lrs[1] and lrs[2] > lrs[3] > lrs[4] > lrs[5]


@pytest.mark.slow
def test_compiled_run_trains_and_saves_plain_weights(tiny_dataset, tmp_path):
    """`--compile` trains through torch.compile; the checkpoint is the plain module's (no
    `_orig_mod.` keys), it loads, and one epoch's loss agrees with the eager run's."""
    eager = fit(tiny_config(tiny_dataset, tmp_path / "eager", epochs=1), progress=False)
    compiled = fit(
        tiny_config(tiny_dataset, tmp_path / "compiled", epochs=1, compile=True), progress=False
    )
    assert compiled.epochs_done == 1
    ckpts = [load_checkpoint(tmp_path / run / "last.pth") for run in ("eager", "compiled")]
    assert list(ckpts[1]["model"]) == list(ckpts[0]["model"])
    assert list(ckpts[1]["raw_model"]) == list(ckpts[0]["raw_model"])
    assert json.loads((tmp_path / "compiled" / "config.json").read_text())["compile"] is True
    losses = [
        float(next(csv.DictReader((tmp_path / run / "metrics.csv").open()))["train_loss"])
        for run in ("eager", "compiled")
    ]
    assert losses[1] == pytest.approx(losses[0], rel=0.05)
    load_model(tmp_path / "compiled" / "best.pth")
    assert eager.epochs_done == 1


def test_resume_refuses_a_different_config(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    assert (
        run_cli(
            "fit", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "1", *TINY_ARGS
        ).exit_code
        == 0
    )
    result = CliRunner().invoke(
        main, ["fit", "--out", str(out), "--resume", "--epochs", "2", "--lr", "0.5", "--quiet"]
    )
    assert result.exit_code == 2
    assert "--lr: run has 0.001, given 0.5" in result.output
    forced = run_cli(
        "fit", "--out", str(out), "--resume", "--epochs", "2", "--lr", "0.01", "--force", "--quiet"
    )
    assert forced.exit_code == 0, forced.output
    assert load_checkpoint(out / "last.pth")["epoch"] == 2


def test_resume_without_a_run(tmp_path):
    result = CliRunner().invoke(main, ["fit", "--out", str(tmp_path / "none"), "--resume"])
    assert result.exit_code == 2
    assert "nothing to resume" in result.output


def test_nan_loss_names_epoch_and_step(tiny_dataset, tmp_path, monkeypatch):
    import trainer.fit as fit_module

    real_build = fit_module.build_loss

    def poisoned(*a, **kw):
        loss = real_build(*a, **kw)

        class Nan(torch.nn.Module):
            calls = 0

            def forward(self, logits, target):
                Nan.calls += 1
                value = loss(logits, target)
                return value * float("nan") if Nan.calls == 2 else value

        return Nan()

    monkeypatch.setattr(fit_module, "build_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="at epoch 1, step 2"):
        fit(tiny_config(tiny_dataset, tmp_path / "nan"), progress=False)


def test_misspelled_option_gets_a_suggestion():
    result = CliRunner().invoke(main, ["fit", "--epoch", "3"])
    assert result.exit_code == 2
    assert "No such option '--epoch'" in result.output and "'--epochs'" in result.output


def test_unknown_architecture_gets_a_suggestion():
    result = CliRunner().invoke(main, ["fit", "--arch", "unetpp"])
    assert result.exit_code == 2
    assert "Did you mean 'unet_pp'?" in result.output


def test_help_documents_defaults():
    text = CliRunner().invoke(main, ["fit", "--help"]).output
    for fragment in (
        "--dice-weight",
        "default: 0.7",
        "--patience",
        "default: 15",
        "--aug",
        "standard",
    ):
        assert fragment in text


def test_cpu_fp16_is_refused(tiny_dataset, tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "fit",
            "--data",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "r"),
            "--precision",
            "fp16",
            *TINY_ARGS,
        ],
    )
    assert result.exit_code == 2
    assert "fp16 needs a CUDA device" in result.output


def test_models_and_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "models"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=True,
    )
    names = proc.stdout.split()
    assert "unet" in names and "pretrained_attention_r2unet" in names and len(names) == 6


def test_evaluate_prints_metrics_json(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_dataset, out, epochs=1), progress=False)
    result = run_cli(
        "evaluate", "--ckpt", str(out / "best.pth"), "--data", str(tiny_dataset), "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 4 and report["input_size"] == [32, 32]
    assert 0.0 <= report["dice"] <= 1.0 and 0.0 <= report["acc"] <= 1.0
    stored = load_checkpoint(out / "best.pth")["metrics"]
    assert report["dice"] == pytest.approx(stored["dice"], abs=1e-6)


def test_evaluate_splits_a_flat_folder_as_the_run_did(tiny_dataset, tmp_path):
    import shutil

    flat = tmp_path / "flat"
    shutil.copytree(tiny_dataset / "train", flat)
    out = tmp_path / "run"
    fit(tiny_config(flat, out, epochs=1, val_fraction=0.5, seed=3, device="cpu"), progress=False)
    result = run_cli("evaluate", "--ckpt", str(out / "best.pth"), "--data", str(flat))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 4  # the run's 0.5 of 8, not the default 0.2
    stored = load_checkpoint(out / "best.pth")["metrics"]
    assert report["dice"] == pytest.approx(stored["dice"], abs=1e-6)
    other = run_cli("evaluate", "--ckpt", str(out / "best.pth"), "--data", str(flat), "--seed", "0")
    assert json.loads(other.output)["images"] == 4


def test_ctrl_c_swallowed_by_a_finalizer_still_stops_the_run(tiny_dataset, tmp_path, monkeypatch):
    """Python ignores exceptions raised in weakref callbacks (matplotlib runs many of them
    while plotting curves); a SIGINT arriving there must still stop the run. The epoch's
    bookkeeping defers it, so it is not even raised there."""
    import weakref

    import trainer.fit as fit_module

    real_plot = fit_module.plot_curves

    class Figure:
        pass

    def plot_and_get_interrupted_in_a_callback(*args, **kwargs):
        real_plot(*args, **kwargs)
        figure = Figure()
        weakref.finalize(figure, lambda: signal.getsignal(signal.SIGINT)(signal.SIGINT, None))
        del figure  # the handler's KeyboardInterrupt is raised, and ignored, in the callback

    monkeypatch.setattr(fit_module, "plot_curves", plot_and_get_interrupted_in_a_callback)
    ignored = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: ignored.append(u.exc_type))
    out = tmp_path / "run"
    result = fit(tiny_config(tiny_dataset, out, epochs=5, device="cpu"), progress=False)
    assert ignored == []  # deferred: nothing raised inside the callback for Python to drop
    assert result.interrupted and result.epochs_done == 1
    assert load_checkpoint(out / "last.pth")["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_bad_data_folder_is_named(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(
        main, ["fit", "--data", str(empty), "--out", str(tmp_path / "r"), *TINY_ARGS]
    )
    assert result.exit_code == 2
    assert "empty" in result.output


def _fit_command(data: Path, out: Path, epochs: int, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "trainer", "fit", "--data", str(data), "--out", str(out)]
    cmd += ["--epochs", str(epochs), "--width", "8", "--img-size", "48", "--batch-size", "2"]
    cmd += ["--quiet"]
    return cmd + (["--resume"] if resume else [])


def _epochs_logged(run: Path) -> int:
    path = run / "metrics.csv"
    return len(list(csv.DictReader(path.open()))) if path.is_file() else 0


def _wait_for_epochs(run: Path, at_least: int, proc: subprocess.Popen, timeout: float = 120):
    """Wait until metrics.csv has `at_least` rows (or the process ends)."""
    deadline = time.monotonic() + timeout
    while _epochs_logged(run) < at_least and proc.poll() is None:
        assert time.monotonic() < deadline, f"no epoch {at_least} within {timeout} s"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_then_resume_finishes_and_every_checkpoint_loads(tmp_path):
    from trainer.data import make_sample_dataset

    data = make_sample_dataset(tmp_path / "data", n_train=24, n_test=4, size=48, seed=3)
    out = tmp_path / "run"
    epochs = 20
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    kills = 0
    proc = subprocess.Popen(_fit_command(data, out, epochs), env=env, cwd=tmp_path)
    # three kills at different moments of an epoch, each after the run made progress
    for delay in (0.0, 0.17, 0.41):
        _wait_for_epochs(out, _epochs_logged(out) + 1, proc)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        for ckpt in out.glob("*.pth"):
            load_checkpoint(ckpt)  # never truncated
        resume = (out / "last.pth").is_file()
        proc = subprocess.Popen(
            _fit_command(data, out, epochs, resume=resume), env=env, cwd=tmp_path
        )
    assert proc.wait(timeout=300) == 0
    assert kills == 3
    assert load_checkpoint(out / "last.pth")["epoch"] == epochs
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    for ckpt in out.glob("*.pth"):
        load_checkpoint(ckpt)


@pytest.mark.slow
def test_sigint_stops_cleanly_with_exit_130(tmp_path):
    from trainer.data import make_sample_dataset

    data = make_sample_dataset(tmp_path / "data", n_train=24, n_test=4, size=48, seed=3)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        _fit_command(data, out, 50), env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not (out / "last.pth").is_file() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "resume with: segtrain fit --out" in output
    done = load_checkpoint(out / "last.pth")["epoch"]
    assert done >= 1
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == done


def test_existing_run_is_not_overwritten(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    fit(tiny_config(tiny_dataset, out, epochs=1), progress=False)
    before = (out / "last.pth").read_bytes()
    result = CliRunner().invoke(
        main, ["fit", "--data", str(tiny_dataset), "--out", str(out), *TINY_ARGS]
    )
    assert result.exit_code == 2
    assert "holds a run already" in result.output
    assert (out / "last.pth").read_bytes() == before


def test_sigint_during_the_epochs_bookkeeping_waits_for_it():
    from trainer.interrupts import SigintLatch

    latch = SigintLatch()
    latch.install()
    written = []
    try:
        with pytest.raises(KeyboardInterrupt), latch.deferred():
            signal.raise_signal(signal.SIGINT)
            written.append("metrics row")
            written.append("last.pth")
    finally:
        latch.restore()
    assert written == ["metrics row", "last.pth"]
