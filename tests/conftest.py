"""Shared fixtures: tiny generated datasets and the optional real dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUTTERFLY = REPO_ROOT.parent / "shared" / "datasets" / "nature-butterfly"


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A generated labelme dataset (train/ + test/) small enough for a few seconds of training."""
    from trainer.data import make_sample_dataset

    return make_sample_dataset(
        tmp_path_factory.mktemp("data") / "tiny", n_train=8, n_test=4, size=40, seed=1
    )


@pytest.fixture
def butterfly() -> Path:
    if not BUTTERFLY.is_dir():
        pytest.skip(
            f"real dataset not present at {BUTTERFLY} (../shared/datasets beside the checkout)"
        )
    return BUTTERFLY
