"""`segserve` on Ray Serve: the Open Inference Protocol endpoints, /segment, the remote
Segmenter, bad requests, memory, a replica killed under load, and a clean stop on SIGINT.

One server (two replicas) is started for the whole module: Ray takes tens of seconds to
start on a busy 2-core machine. The tests run in file order; the last one stops it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_models import exported_model

pytest.importorskip("ray.serve", reason="ray[serve] is needed (pip install -e '.[serve]')")
tritonclient_http = pytest.importorskip("tritonclient.http", reason="tritonclient (serve extra)")

from runtime import Segmenter  # noqa: E402
from serving.app import PLATFORMS  # noqa: E402
from serving.process import ServerProcess, post, replica_pids, urlopen  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_BODY_MB = 1
MAX_PIXELS = 4_000_000


class Server(ServerProcess):
    def __init__(self, model: Path, log: Path):
        super().__init__(
            model, "--name", "model", "--replicas", "2", "--threads", "1",
            "--max-body-mb", str(MAX_BODY_MB), "--max-pixels", str(MAX_PIXELS),
            "--batch-wait-ms", "5", log=log, cwd=REPO_ROOT,
        )  # fmt: skip
        self.model_url = f"{self.url}/v2/models/model"

    def wait_ready(self) -> None:
        try:
            super().wait_ready()
        except RuntimeError as err:
            pytest.fail(str(err))


def rss_bytes(pid: int) -> int:
    return int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * 4096


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = exported_model(tmp_path_factory, gain=8.0)
    return path


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    running = Server(model, tmp_path_factory.mktemp("serve") / "segserve.log")
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def local(model):
    with Segmenter(model) as seg:
        yield seg


def photo(seed: int, size: tuple[int, int] = (45, 70)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def test_a_bad_model_fails_before_ray_starts(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    result = subprocess.run(
        [sys.executable, "-m", "serving", str(bad)], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {bad}: not a loadable")


def test_health_and_metadata_endpoints(server, local):
    assert json.loads(urlopen(f"{server.url}/v2/health/live").read()) == {"live": True}
    assert json.loads(urlopen(f"{server.url}/v2/health/ready").read()) == {"ready": True}
    meta = json.loads(urlopen(server.model_url).read())
    platform = PLATFORMS[local.backend.name]  # OpenVINO runs an .onnx on the CPU where installed
    assert (meta["name"], meta["platform"]) == ("model", platform)
    assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"][0]["shape"] == [-1, 1, 32, 32]
    from runtime.metadata import ModelMetadata

    assert ModelMetadata.from_props(meta["parameters"]) == local.metadata
    client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{server.port}")
    assert client.is_server_live() and client.is_model_ready("model")


def test_infer_json_and_binary_equal_the_local_model(server, local):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, 3, 32, 32), dtype=np.float32)
    expected = local.backend.run(images)
    client = tritonclient_http.InferenceServerClient(f"127.0.0.1:{server.port}")
    for binary in (True, False):
        tensor = tritonclient_http.InferInput("images", list(images.shape), "FP32")
        tensor.set_data_from_numpy(images, binary_data=binary)
        wanted = tritonclient_http.InferRequestedOutput("probs", binary_data=binary)
        result = client.infer("model", [tensor], outputs=[wanted])
        np.testing.assert_allclose(result.as_numpy("probs"), expected, atol=1e-6)


def test_segment_returns_the_local_mask_as_png_and_polygons(server, local):
    image = photo(2)
    status, body = post(f"{server.url}/segment", png_bytes(image))
    assert status == 200
    mask = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask // 255, local.predict(image))
    status, body = post(f"{server.url}/segment?format=json", png_bytes(image))
    labelme = json.loads(body)
    assert status == 200 and (labelme["imageHeight"], labelme["imageWidth"]) == image.shape[:2]
    status, body = post(f"{server.url}/segment?threshold=0.9", png_bytes(image))
    strict = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED) // 255
    np.testing.assert_array_equal(strict, local.predict(image, threshold=0.9))


def test_concurrent_clients_get_the_local_masks(server, local):
    images = [photo(seed, (30 + seed, 40 + 2 * seed)) for seed in range(24)]

    def segment(image):
        status, body = post(f"{server.url}/segment", png_bytes(image))
        assert status == 200, body
        return cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED) // 255

    with ThreadPoolExecutor(12) as pool:
        masks = list(pool.map(segment, images * 2))
    for image, mask in zip(images * 2, masks, strict=True):
        np.testing.assert_array_equal(mask, local.predict(image))
    stats = json.loads(urlopen(f"{server.model_url}/stats").read())["model_stats"][0]
    assert stats["execution_count"] >= 1 and stats["inference_count"] >= stats["execution_count"]


def test_remote_segmenter_equals_the_local_one(server, local):
    images = [photo(seed) for seed in range(5)]
    with Segmenter(server.model_url, batch_size=2) as remote:
        assert remote.backend.name == "remote" and remote.metadata == local.metadata
        for got, expected in zip(remote.predict(images), local.predict(images), strict=True):
            np.testing.assert_array_equal(got, expected)
        np.testing.assert_allclose(
            remote.predict_proba(images[0]), local.predict_proba(images[0]), atol=1e-5
        )


def _bomb_png(side: int = 24_000) -> bytes:
    """A tiny PNG whose header states side x side pixels (its data is never decoded)."""
    header = np.array([side, side], ">u4").tobytes() + bytes([8, 0, 0, 0, 0])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    rows = zlib.compress(b"\x00" * (side + 1) * 8)  # a few rows; the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_bad_requests_are_4xx_with_one_line_and_the_server_keeps_serving(server, local):
    infer = f"{server.model_url}/infer"
    cases = {
        "undecodable": (f"{server.url}/segment", b"not an image", 400, "cannot decode"),
        "bomb": (f"{server.url}/segment", _bomb_png(), 413, "more than the limit"),
        "body too large": (f"{server.url}/segment", b"x" * (MAX_BODY_MB * 1_000_001), 413, "limit"),
        "bad threshold": (f"{server.url}/segment?threshold=2", png_bytes(photo(3)), 400, "[0, 1]"),
        "unknown model": (f"{server.url}/v2/models/other/infer", b"{}", 404, "unknown model"),
        "bad json": (infer, b"{not json", 400, "not valid JSON"),
        "wrong shape": (infer, _json_infer(np.zeros((1, 3, 16, 16), np.float32)), 400, "32x32"),
        "wrong dtype": (infer, _json_infer(np.zeros((1, 3, 32, 32), np.int32)), 400, "float32"),
    }
    for name, (url, body, status, words) in cases.items():
        started = time.monotonic()
        got, answer = post(url, body)
        assert got == status, (name, got, answer)
        error = json.loads(answer)["error"]
        assert words in error and "\n" not in error, (name, error)
        if name == "bomb":
            assert time.monotonic() - started < 10  # refused from the header, never decoded
    status, body = post(f"{server.url}/segment", png_bytes(photo(4)))
    assert status == 200


def _json_infer(array: np.ndarray) -> bytes:
    from runtime.oip import to_json_tensor

    return json.dumps({"inputs": [to_json_tensor("images", array)]}).encode()


def test_replica_memory_stays_flat_over_thousands_of_requests(server):
    body = png_bytes(photo(5, (64, 80)))

    def hammer(count: int) -> None:
        with ThreadPoolExecutor(8) as pool:
            assert all(
                s == 200
                for s, _ in pool.map(lambda _: post(f"{server.url}/segment", body), range(count))
            )

    hammer(300)  # warm-up: allocator arenas, caches
    before = {pid: rss_bytes(pid) for pid in replica_pids()}
    hammer(2000)
    after = {pid: rss_bytes(pid) for pid in before}
    assert len(before) == 2
    for pid in before:
        assert after[pid] < before[pid] * 1.10, (before, after)


def test_a_replica_killed_under_load_is_restarted_and_no_request_is_lost(server, local):
    images = [photo(seed) for seed in range(8)]
    expected = [local.predict(image) for image in images]
    victims = replica_pids()
    assert len(victims) == 2
    with Segmenter(server.model_url, batch_size=1) as remote:

        def one(index: int) -> bool:
            got = remote.predict(images[index % len(images)])
            return bool((got == expected[index % len(images)]).all())

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(one, i) for i in range(150)]
            time.sleep(1.0)
            os.kill(victims[0], signal.SIGKILL)
            results = [f.result(timeout=300) for f in futures]
    assert all(results) and len(results) == 150
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        alive = replica_pids()
        if len(alive) == 2 and victims[0] not in alive:
            break
        time.sleep(1)
    assert len(replica_pids()) == 2, "Ray did not restart the killed replica"
    status, _ = post(f"{server.url}/segment", png_bytes(images[0]))
    assert status == 200


def test_sigint_stops_the_server_and_everything_it_started(server):
    seconds = server.stop(timeout=60)
    assert server.process.returncode == 0, server.log.read_text()[-2000:]
    assert seconds < 30, f"took {seconds:.1f} s"
    assert not replica_pids()
    with pytest.raises(OSError):
        urlopen(f"{server.url}/v2/health/live")
