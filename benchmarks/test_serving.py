"""`segserve` under load: dynamic batching against none, and a replica killed mid-load.

- `test_segment_throughput[max_batch]`: `CLIENTS` concurrent clients POST a 320x240 photo
  to `/segment` of a `unet` width-16 128 px model served by one replica, with
  `--max-batch 8` and with `--max-batch 1`, side by side in one run. The summary prints the
  ratio of their requests/s.
- `test_replica_kill`: two replicas under the same load; one is SIGKILLed. Records the
  requests that failed (the remote Segmenter retries, so the goal is none) and the seconds
  until Ray has two replicas again (not a timing: run it without `--benchmark-only`).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("ray.serve", reason="ray[serve] is needed (pip install -e '.[serve]')")

from benchmarks.inputs import load_images  # noqa: E402
from benchmarks.matrix import round_budget_seconds  # noqa: E402
from benchmarks.measure import RESULTS, record, time_rounds  # noqa: E402
from export.onnx_export import export_onnx  # noqa: E402
from runtime import Segmenter  # noqa: E402
from runtime.cpu import instruction_set  # noqa: E402
from runtime.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelInfo  # noqa: E402
from serving.process import ServerProcess, post, replica_pids  # noqa: E402
from trainer.checkpoint import build_checkpoint, save_checkpoint  # noqa: E402
from trainer.models import create_model  # noqa: E402

CLIENTS = 16
REQUESTS = 96  # per timed round
SIZE = 128
PHOTO = (240, 320)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("serving_model")
    net = create_model("unet", width=16).eval()
    info = ModelInfo(
        num_classes=1, classes=["background", "foreground"], input_size=(SIZE, SIZE),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, threshold=0.5,
    )  # fmt: skip
    ckpt = build_checkpoint(net, info=info, epoch=0, metrics={})
    save_checkpoint(ckpt, folder / "unet.pth")
    return export_onnx(folder / "unet.pth", folder / "unet.onnx").path


@pytest.fixture(scope="module")
def body() -> bytes:
    images, _ = load_images(1)
    image = cv2.resize(images[0], (PHOTO[1], PHOTO[0]), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def _load(url: str, body: bytes, count: int) -> list[int]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        return [status for status, _ in pool.map(lambda _: post(url, body), range(count))]


@pytest.mark.parametrize("max_batch", [8, 1])
def test_segment_throughput(benchmark, max_batch, model, body, tmp_path):
    benchmark.group = "serving /segment"
    threads = str(os.cpu_count() or 1)
    with ServerProcess(
        model, "--max-batch", str(max_batch), "--batch-wait-ms", "10", "--threads", threads,
        log=tmp_path / "segserve.log",
    ) as server:  # fmt: skip
        server.wait_ready()
        url = f"{server.url}/segment"
        assert set(_load(url, body, CLIENTS)) == {200}  # warm-up

        def requests() -> None:
            statuses = _load(url, body, REQUESTS)
            assert set(statuses) == {200}, statuses

        times = time_rounds(benchmark, requests, round_budget_seconds())
    record(
        benchmark, times, backend=f"segserve_max_batch_{max_batch}", arch="unet-w16", size=SIZE,
        batch=max_batch, images=REQUESTS, flops_per_image=None, peak_gflops=None, device="cpu",
        clients=CLIENTS, cpu=instruction_set(),
    )  # fmt: skip
    if max_batch == 1:
        by_batch = {r["batch"]: r for r in RESULTS if r["backend"].startswith("segserve_max")}
        if 8 in by_batch:
            ratio = by_batch[8]["images_per_s"] / by_batch[1]["images_per_s"]
            print(f"segserve /segment, max-batch 8 / max-batch 1: {ratio:.2f}x requests/s")


def test_replica_kill(model, tmp_path):
    images, _ = load_images(4)
    with ServerProcess(
        model, "--replicas", "2", "--threads", "1", log=tmp_path / "segserve.log"
    ) as server:
        server.wait_ready()
        victims = replica_pids()
        assert len(victims) == 2
        with Segmenter(model) as local, Segmenter(server.model_url, batch_size=1) as remote:
            expected = [local.predict(image) for image in images]

            def one(index: int) -> bool:
                try:
                    got = remote.predict(images[index % len(images)])
                except OSError:
                    return False
                return bool(np.array_equal(got, expected[index % len(images)]))

            with ThreadPoolExecutor(CLIENTS) as pool:
                futures = [pool.submit(one, i) for i in range(4 * REQUESTS)]
                time.sleep(1.0)
                killed_at = time.monotonic()
                os.kill(victims[0], signal.SIGKILL)
                results = [f.result(timeout=600) for f in futures]
        while time.monotonic() - killed_at < 300:
            alive = replica_pids()
            if len(alive) == 2 and victims[0] not in alive:
                break
            time.sleep(0.5)
        restart_s = time.monotonic() - killed_at
    lost = results.count(False)
    print(
        f"replica SIGKILL under {CLIENTS} clients: {lost} of {len(results)} requests lost or "
        f"wrong; two replicas again after {restart_s:.1f} s"
    )
    assert lost == 0
