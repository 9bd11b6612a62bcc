"""Data-parallel training: torchrun with gloo on the CPU, two processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.checkpoint import load_checkpoint
from trainer.distributed import DistContext, ShardSampler
from trainer.evaluate import evaluate_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_shards_cover_every_sample_once():
    shards = [list(ShardSampler(11, DistContext(rank, 3))) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))


@pytest.mark.slow
def test_two_process_gloo_run_matches_single_process_evaluation(tiny_dataset, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "trainer", "fit", "--devices", "2", "--device", "cpu"]
    command += ["--data", str(tiny_dataset), "--out", str(out), "--epochs", "2"]
    command += ["--width", "4", "--img-size", "32", "--batch-size", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("done: 2 epoch(s)") == 1  # only rank 0 reports

    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "best.pth",
        "config.json",
        "curves.png",
        "last.pth",
        "metrics.csv",
        "summary.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # no second run folder
    assert len((out / "metrics.csv").read_text().splitlines()) == 3

    best = load_checkpoint(out / "best.pth")
    assert not any(key.startswith("module.") for key in best["model"])
    single = evaluate_checkpoint(str(out / "best.pth"), str(tiny_dataset), device="cpu")
    for key in ("acc", "dice", "iou"):
        assert single[key] == pytest.approx(best["metrics"][key], abs=1e-6), key

    resume = [*command, "--resume"]
    resume[resume.index("--epochs") + 1] = "3"
    proc = subprocess.run(
        resume, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert load_checkpoint(out / "last.pth")["epoch"] == 3
    assert len((out / "metrics.csv").read_text().splitlines()) == 4
