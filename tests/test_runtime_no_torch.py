"""The runtime predicts without importing torch, trainer or export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from runtime_models import exported_model

REPO_ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
import numpy as np
from runtime import Segmenter, mask_to_labelme, overlay
from runtime.cli import main  # the CLI module too

with Segmenter(sys.argv[1]) as seg:
    mask = seg.predict(np.zeros((40, 50, 3), np.uint8))
    assert mask.shape == (40, 50)
    overlay(np.zeros((40, 50, 3), np.uint8), mask)
    mask_to_labelme(mask, "a.png", seg.classes)
loaded = [m for m in ("torch", "torchvision", "trainer", "export") if m in sys.modules]
print("loaded:", loaded)
assert not loaded, loaded
"""


def test_prediction_imports_no_torch(tmp_path_factory):
    model = exported_model(tmp_path_factory)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(model)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded: []" in result.stdout
