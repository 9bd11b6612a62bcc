"""Video and streams: `Segmenter.predict_stream`, `segpredict clip.mp4`, bounded memory."""

from __future__ import annotations

import gc
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from runtime_models import exported_model

from runtime import Segmenter
from runtime.cli import main
from runtime.stream import FrameReader, StreamError, open_frames

FRAMES, H, W, FPS = 12, 48, 64, 10.0


def make_clip(path: Path, frames: int = FRAMES, codec: str = "mp4v") -> Path:
    """A moving bright square on a textured ground, written with OpenCV."""
    rng = np.random.default_rng(0)
    ground = rng.integers(0, 90, (H, W, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, (W, H))
    assert writer.isOpened(), f"OpenCV cannot write {codec} here"
    for i in range(frames):
        frame = ground.copy()
        frame[10:30, 4 + 3 * i : 24 + 3 * i] = (250, 240, 230)
        writer.write(frame)
    writer.release()
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def frame_count(path: Path) -> int:
    return len(decoded_frames(path))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return exported_model(tmp_path_factory, gain=8.0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def test_stream_masks_equal_frame_by_frame_predict(model, clip):
    frames = decoded_frames(clip)
    assert len(frames) == FRAMES
    with Segmenter(model, batch_size=5) as seg:
        results = list(seg.predict_stream(clip))
        expected = [seg.predict(frame) for frame in frames]
    assert [r.index for r in results] == list(range(FRAMES))
    for result, mask in zip(results, expected, strict=True):
        assert result.mask.shape == (H, W)
        np.testing.assert_array_equal(result.mask, mask)
    stamps = [r.timestamp for r in results]
    assert stamps == sorted(stamps) and stamps[1] == pytest.approx(1 / FPS, abs=1e-3)
    assert len({r.mask.tobytes() for r in results}) > 1  # the moving square changes the mask


def test_every_keeps_every_nth_frame_and_iterables_work(model, clip):
    frames = decoded_frames(clip)
    with Segmenter(model) as seg:
        kept = list(seg.predict_stream(clip, every=5, batch_size=2))
        from_list = list(seg.predict_stream(iter(frames), every=5))
        assert [r.index for r in kept] == [0, 5, 10] == [r.index for r in from_list]
        for a, b in zip(kept, from_list, strict=True):
            np.testing.assert_array_equal(a.mask, b.mask)
        bgr = [f[:, :, ::-1] for f in frames[:3]]
        for a, b in zip(seg.predict_stream(bgr, bgr=True), kept[:1], strict=False):
            np.testing.assert_array_equal(a.mask, b.mask)


def test_closing_early_stops_the_thread_and_releases_the_capture(model, clip):
    with Segmenter(model, batch_size=2) as seg:
        results = seg.predict_stream(clip)
        next(results)
        capture = results.source.capture
        threads = [t for t in threading.enumerate() if t.name.startswith("segkit-frames")]
        assert threads and capture.isOpened()
        results.close()
        assert not capture.isOpened()
        assert not any(t.is_alive() for t in threads)

        dropped = seg.predict_stream(clip)
        next(dropped)
        capture = dropped.source.capture
        del dropped
        gc.collect()
        assert not capture.isOpened()  # garbage collection releases it too

        never_started = seg.predict_stream(clip)
        never_started.close()
        assert not never_started.source.capture.isOpened()


def test_a_stream_that_fails_midway_delivers_what_it_had_then_says_so(model):
    def frames():
        for _ in range(5):
            yield np.zeros((H, W, 3), np.uint8)
        raise ConnectionError("camera unplugged")

    with Segmenter(model, batch_size=2) as seg:
        got = []
        with pytest.raises(StreamError, match="ended after 5 frames: ConnectionError: camera"):
            for result in seg.predict_stream(frames()):
                got.append(result.index)
    assert got == [0, 1, 2, 3, 4]


def test_bad_sources_are_one_clear_error(model, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with Segmenter(model) as seg:
        with pytest.raises(StreamError, match="fake.mp4: cannot open the video"):
            seg.predict_stream(fake)
        with pytest.raises(FileNotFoundError, match="no such video file"):
            seg.predict_stream(tmp_path / "absent.mp4")
        with pytest.raises(ValueError, match="every: expected an integer >= 1"):
            seg.predict_stream([np.zeros((4, 4, 3), np.uint8)], every=0)


def test_segpredict_writes_a_mask_per_frame_and_an_overlay_video(model, clip, tmp_path):
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), decoded_frames(clip)[0][:, :, ::-1])
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, [str(model), str(clip), str(still), "--out", str(out), "--overlay", "-q"]
    )
    assert result.exit_code == 0, result.output
    masks = sorted((out / "clip").glob("*.png"))
    assert [m.name for m in masks] == [f"{i:06d}.png" for i in range(FRAMES)]
    assert frame_count(out / "clip_overlay.mp4") == FRAMES
    overlay_video = cv2.VideoCapture(str(out / "clip_overlay.mp4"))
    size = (
        overlay_video.get(cv2.CAP_PROP_FRAME_HEIGHT),
        overlay_video.get(cv2.CAP_PROP_FRAME_WIDTH),
    )
    assert size == (H, W) and overlay_video.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    overlay_video.release()
    assert (out / "still.png").is_file() and (out / "still_overlay.jpg").is_file()
    assert "wrote the masks of 2 of 2 inputs" in result.output
    with Segmenter(model) as seg:
        first = seg.predict(decoded_frames(clip)[3])
    np.testing.assert_array_equal(cv2.imread(str(masks[3]), cv2.IMREAD_UNCHANGED) // 255, first)


def test_segpredict_every_and_a_truncated_video(model, tmp_path):
    clip = make_clip(tmp_path / "long.avi", frames=30, codec="MJPG")
    out = tmp_path / "every"
    result = CliRunner().invoke(main, [str(model), str(clip), "--out", str(out), "--every", "10"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "long").iterdir()) == [
        "000000.png", "000010.png", "000020.png"
    ]  # fmt: skip
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(main, [str(model), str(cut), "--out", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 1, result.output
    written = len(list((tmp_path / "c" / "cut").glob("*.png")))
    assert 0 < written < 30
    assert f"kept the {written} frames written" in result.output


def test_segpredict_refuses_a_video_it_cannot_open(model, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    result = CliRunner().invoke(main, [str(model), str(fake), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {fake}: cannot open")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_is_flat_over_ten_thousand_frames(model):
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (24, 24, 3), dtype=np.uint8) for _ in range(16)]

    def frames(n):
        for i in range(n):
            yield pool[i % len(pool)].copy()  # a new array each frame, as a decoder gives

    with Segmenter(model, batch_size=16) as seg:
        for _ in seg.predict_stream(frames(500)):  # warm-up: arenas, caches, the session
            pass
        gc.collect()
        counted = 0
        stream = seg.predict_stream(frames(10_000))
        for _ in stream:
            counted += 1
            if counted == 1_000:
                gc.collect()
                after_1k = _rss_bytes()
        gc.collect()
        after_10k = _rss_bytes()
    assert counted == 10_000
    growth = (after_10k - after_1k) / after_1k
    assert growth < 0.05, f"RSS {after_1k / 1e6:.1f} MB -> {after_10k / 1e6:.1f} MB"


def test_reader_queue_is_bounded(tmp_path):
    produced = []

    def frames():
        for i in range(1000):
            produced.append(i)
            yield np.zeros((4, 4, 3), np.uint8)

    reader = FrameReader(open_frames(frames()), queue_size=4)
    first = next(iter(reader))
    threading.Event().wait(0.3)  # the thread fills the queue, then waits
    assert first.index == 0 and len(produced) <= 4 + 3
    reader.close()
    assert not reader.alive
