"""Load: one Segmenter under 8 threads, its memory over 1,000 calls, segpredict on 500 images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from runtime_models import exported_model, scene

from runtime import Segmenter
from runtime.cli import main as segpredict

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZES = [(24, 24), (32, 48), (57, 31), (40, 40), (64, 20), (33, 47), (48, 64)]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return exported_model(tmp_path_factory, gain=50.0)


def test_eight_threads_match_a_sequential_run(model):
    n_threads, per_thread = 8, 50
    images = [
        [scene(100 * t + i, *SIZES[(t + i) % len(SIZES)]) for i in range(per_thread)]
        for t in range(n_threads)
    ]
    with Segmenter(model, batch_size=4, threads=1) as seg:
        expected = [[seg.predict(image) for image in batch] for batch in images]
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            got = list(pool.map(lambda batch: [seg.predict(image) for image in batch], images))
    assert sum(len(batch) for batch in got) == n_threads * per_thread
    for thread_masks, thread_expected in zip(got, expected, strict=True):
        for mask, want in zip(thread_masks, thread_expected, strict=True):
            np.testing.assert_array_equal(mask, want)
    assert any(m.any() and not m.all() for batch in expected for m in batch)  # masks vary


# Runs in its own process (no torch, no pytest state) so that its resident memory is the
# Segmenter's own; prints the resident set sizes in MB after 100 and after 1,000 predictions.
_MEMORY_PROBE = """
import json, sys
import numpy as np
from runtime import Segmenter

def rss_mb():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024

sizes = json.loads(sys.argv[2])
rng = np.random.default_rng(0)
images = [rng.integers(0, 256, (*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(50)]
with Segmenter(sys.argv[1], batch_size=4, threads=1) as seg:
    for i in range(50):  # warm-up: arenas and caches reach their working size
        seg.predict(images[i % 50])
    rss = {}
    for i in range(1, 1001):
        seg.predict(images[i % 50] if i % 10 else images[i % 50 : i % 50 + 3])
        if i in (100, 1000):
            rss[i] = rss_mb()
print(json.dumps({"after_100": rss[100], "after_1000": rss[1000]}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")
def test_memory_stays_flat_over_1000_predictions(model):
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(model), json.dumps(SIZES)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
        check=True,
    )
    rss = json.loads(proc.stdout.splitlines()[-1])
    before, after = rss["after_100"], rss["after_1000"]
    print(f"VmRSS after 100 / 1000 predictions: {before:.1f} / {after:.1f} MB")
    assert after <= 1.10 * before, rss


def _write_png(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _corrupt_files(folder: Path) -> list[Path]:
    """Eight unreadable images; sorted first, so the first batch of 8 holds no good image."""
    ok, png = cv2.imencode(".png", scene(1, 32, 32))
    ok, jpg = cv2.imencode(".jpg", scene(2, 32, 32))
    contents = {
        "bad_0.png": png.tobytes()[:50],
        "bad_1.png": png.tobytes()[: len(png) // 2],
        "bad_2.png": png.tobytes()[:-20],
        "bad_3.jpg": b"this is a text file, not a JPEG\n",
        "bad_4.png": b"",
        "bad_5.jpg": jpg.tobytes()[:100],
        "bad_6.png": b"\x89PNG\r\n\x1a\n",
        "bad_7.bmp": b"BM" + bytes(30),
    }
    paths = []
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def test_segpredict_over_500_images_with_corrupt_ones(model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    good = []
    for i in range(500):
        path = images / f"img_{i:03d}.png"
        _write_png(path, scene(i, *SIZES[i % len(SIZES)]))
        good.append(path)
    corrupt = _corrupt_files(images)
    out = tmp_path / "masks"

    result = CliRunner().invoke(segpredict, [str(model), str(images), "--out", str(out), "-q"])

    assert result.exit_code == 1, result.output
    assert "wrote the masks of 500 of 508 images" in result.stdout
    listed = result.stderr.split("8 failed:\n", 1)[1].splitlines()
    assert [line.split(": ", 1)[0].strip() for line in listed] == [str(p) for p in corrupt]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}.png" for p in good)
    with Segmenter(model) as seg:
        for index in range(0, 500, 50):  # spot checks against the Python API
            mask = cv2.imread(str(out / f"img_{index:03d}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(mask, seg.predict(good[index]) * 255)
