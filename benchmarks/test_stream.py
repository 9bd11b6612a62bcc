"""The overlapped decoder: `Segmenter.predict_stream` against decode-then-predict, same clip.

- `stream`: `predict_stream(clip)`: frames decode in the background thread while the model
  runs on the previous batch.
- `serial`: the same loop without overlap: decode a batch of frames, then predict it.
Both run the same width-16 U-Net at 128 px (a deployment-sized model, so that decoding is a
visible share of the work) on one generated 1280x720 clip of 48 frames, batch 8, in one
process; each case records frames/s (`images_per_s`, one image = one frame), so the report
shows their ratio side by side. The overlap pays when the model leaves a core to the decoder
(ONNX Runtime with fewer threads than cores, or a GPU); when its threads take every core the
two loops are expected to be level.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.matrix import round_budget_seconds
from benchmarks.measure import record, time_rounds
from runtime import Segmenter

FRAMES, HEIGHT, WIDTH, FPS, BATCH, SIZE = 48, 720, 1280, 25.0, 8, 128


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "clip.mp4"
    rng = np.random.default_rng(0)
    ground = cv2.resize(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8), (WIDTH, HEIGHT))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for i in range(FRAMES):
        frame = ground.copy()
        cv2.circle(frame, (80 + 22 * i, 360), 120, (240, 230, 220), -1)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    import torch

    from export.onnx_export import export_onnx
    from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelInfo
    from trainer.checkpoint import build_checkpoint, save_checkpoint
    from trainer.models import create_model

    folder = tmp_path_factory.mktemp("stream_model")
    torch.manual_seed(0)
    info = ModelInfo(
        1, ["background", "foreground"], (SIZE, SIZE), IMAGENET_MEAN, IMAGENET_STD, 0.5
    )
    ckpt = build_checkpoint(create_model("unet", width=16), info=info, epoch=0, metrics={})
    save_checkpoint(ckpt, folder / "unet16.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(folder / "unet16.pth", folder / "unet16.onnx").path


def decode_then_predict(seg: Segmenter, clip: Path) -> int:
    """The loop without overlap: read a batch of frames, then segment it."""
    capture = cv2.VideoCapture(str(clip))
    done = 0
    while True:
        batch = []
        for _ in range(BATCH):
            ok, bgr = capture.read()
            if not ok:
                break
            batch.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not batch:
            break
        done += len(seg.predict(batch))
    capture.release()
    return done


@pytest.mark.parametrize("threads", [1, None], ids=["1-thread", "all-threads"])
@pytest.mark.parametrize("mode", ["stream", "serial"])
def test_stream_decoder(benchmark, mode, threads, clip, small_model):
    benchmark.group = f"video decode + predict, ONNX Runtime threads {threads or 'all'}"
    with Segmenter(small_model, device="cpu", batch_size=BATCH, threads=threads) as seg:
        if mode == "stream":
            run = lambda: sum(1 for _ in seg.predict_stream(clip))  # noqa: E731
        else:
            run = lambda: decode_then_predict(seg, clip)  # noqa: E731
        assert run() == FRAMES
        times = time_rounds(benchmark, run, round_budget_seconds())
    record(
        benchmark,
        times,
        backend=f"video_{mode}",
        arch="unet16",
        size=SIZE,
        batch=BATCH,
        images=FRAMES,
        flops_per_image=None,
        peak_gflops=None,
        clip=f"{FRAMES} frames {WIDTH}x{HEIGHT} mp4v",
        threads=threads,
    )
