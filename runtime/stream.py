"""Frames from video files, cameras, network streams or any iterable, decoded in the background.

`open_frames(source)` returns a `FrameSource`: OpenCV's `VideoCapture` for a video file, a
camera index or an RTSP/HTTP(S) URL, or the frames of any iterable of numpy images. A
`FrameReader` runs the source in a background thread into a bounded queue, so the next frames
decode (and are resized to the model's input size) while the model runs on the previous
batch; memory stays flat however long the stream (at most `queue_size` frames wait).
`close()` (or leaving the `with` block, or the generator that owns it being closed or
garbage-collected) stops the thread and releases the capture.

Each `Frame` has its index in the source (counting skipped frames), its timestamp in seconds
and the HxWx3 uint8 RGB pixels. Timestamps: a capture's `CAP_PROP_POS_MSEC` of the frame
(the position in a file, or what a camera or stream reports); when the capture reports none
(0 after the first frame), index / fps; for an iterable, the wall-clock seconds since the
reader started, taken when the frame arrived. A source that ends before its stated frame
count, or whose iterable raises, ends the stream early: the frames read until then are
delivered, then `StreamError` says what happened.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from runtime.errors import ArgumentError, InputError, NotFoundError
from runtime.inputs import to_rgb

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
URL_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://")
_END = object()


class StreamError(InputError):
    """A stream could not be opened, or ended early; the frames before it were delivered."""


@dataclass(frozen=True)
class Frame:
    index: int  # position in the source, skipped frames included
    timestamp: float  # seconds (see the module docstring)
    image: np.ndarray  # HxWx3 uint8 RGB
    prepared: Any = None  # what the reader's `prepare` made of the image, if it has one


def is_video_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_stream_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(URL_SCHEMES)


class FrameSource:
    """Frames one by one (`read`), with what is known of the source (`fps`, `size`, `count`)."""

    name: str = "frames"
    fps: float | None = None
    size: tuple[int, int] | None = None  # (height, width) when known before reading
    count: int | None = None  # frames announced by the source, when known

    def frames(self, every: int) -> Iterator[Frame]:
        raise NotImplementedError

    def release(self) -> None:
        """Free the source; calling it twice is harmless."""


class CaptureSource(FrameSource):
    """An OpenCV `VideoCapture` over a file, a camera index or a stream URL."""

    def __init__(self, target: str | int, name: str):
        self.name = name
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            self.capture.release()
            raise StreamError(name, "cannot open the video (not a video OpenCV can decode?)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.count = count if count > 0 and not isinstance(target, int) else None
        height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.size = (height, width) if height > 0 and width > 0 else None

    def frames(self, every: int) -> Iterator[Frame]:
        index = 0
        while True:
            if index % every:
                if not self.capture.grab():  # skipped: no decode
                    break
                index += 1
                continue
            ok, bgr = self.capture.read()
            if not ok:
                break
            yield Frame(index, self._timestamp(index), to_rgb(bgr, self.name, bgr=True))
            index += 1
        if self.count is not None and index < self.count:
            raise StreamError(
                self.name,
                f"the stream ended after {index} of its {self.count} frames "
                "(a dropped connection or a damaged file)",
            )

    def _timestamp(self, index: int) -> float:
        msec = self.capture.get(cv2.CAP_PROP_POS_MSEC)
        if msec > 0 or index == 0 or self.fps is None:
            return max(msec, 0.0) / 1000.0
        return index / self.fps

    def release(self) -> None:
        self.capture.release()


class IterableSource(FrameSource):
    """The frames of any iterable of numpy images (RGB, or BGR with `bgr=True`)."""

    def __init__(self, frames: Iterable[Any], bgr: bool = False):
        self._frames, self._bgr = frames, bgr

    def frames(self, every: int) -> Iterator[Frame]:
        start = time.monotonic()
        for index, item in _guarded(self._frames):
            if index % every:
                continue
            if not isinstance(item, np.ndarray):
                raise StreamError(
                    f"frame {index}", f"expected a numpy image, got {type(item).__name__}"
                )
            rgb = to_rgb(item, f"frame {index}", bgr=self._bgr)
            yield Frame(index, time.monotonic() - start, rgb)

    def release(self) -> None:
        close = getattr(self._frames, "close", None)  # a generator: run its cleanup
        if callable(close):
            close()


def _guarded(frames: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """enumerate(frames), an error of the iterable itself becoming a StreamError."""
    iterator = iter(frames)
    index = 0
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 - any failure of the source ends the stream
            raise StreamError(
                "frames", f"the stream ended after {index} frames: {type(err).__name__}: {err}"
            ) from err
        yield index, item
        index += 1


def open_frames(source: Any, bgr: bool = False) -> FrameSource:
    """The `FrameSource` of a video path, camera index, stream URL or iterable of frames."""
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, bool):
        raise ArgumentError("source", "expected a video, a camera index, a URL or frames")
    if isinstance(source, int):
        return CaptureSource(source, f"camera {source}")
    if is_stream_url(source):
        return CaptureSource(source, source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise NotFoundError(path, "no such video file")
        return CaptureSource(str(path), str(path))
    if isinstance(source, np.ndarray) and source.ndim != 4:
        raise ArgumentError("source", "a single image is not a stream; use predict()")
    if isinstance(source, Iterable):
        return IterableSource(source, bgr)
    raise ArgumentError(
        "source",
        f"expected a video path, a camera index, a stream URL or an iterable of frames, "
        f"got {type(source).__name__}",
    )


class FrameReader:
    """Runs a `FrameSource` in a background thread into a bounded queue (see the module)."""

    def __init__(
        self,
        source: FrameSource,
        every: int = 1,
        queue_size: int = 16,
        prepare: Callable[[np.ndarray], Any] | None = None,
    ):
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ArgumentError("every", f"expected an integer >= 1, got {every!r}")
        self.source = source
        self._prepare = prepare
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(every,), name=f"segkit-frames {source.name}", daemon=True
        )
        self._thread.start()

    def _run(self, every: int) -> None:
        try:
            for frame in self.source.frames(every):
                if self._prepare is not None:
                    frame = replace(frame, prepared=self._prepare(frame.image))
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(err)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Frame]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the thread (within a fraction of a second) and release the source."""
        self._stop.set()
        while True:  # unblock a reader waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=5)
        try:
            self.source.release()
        except ValueError:  # a generator still running in a thread that did not stop
            pass

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    """Lists of up to `size` frames, in order; when `frames` fails, the frames read before
    the failure still come out (as a last, shorter batch) before the error."""
    batch: list[Frame] = []
    try:
        for frame in frames:
            batch.append(frame)
            if len(batch) == size:
                yield batch
                batch = []
    except Exception:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


@dataclass(frozen=True)
class StreamResult:
    """One frame's prediction: its index and timestamp, the mask at the frame's size, and the
    frame itself (RGB) for overlays; drop the result to free both."""

    index: int
    timestamp: float
    mask: np.ndarray
    image: np.ndarray


def predict_stream(
    segmenter: Any,
    source: Any,
    *,
    batch_size: int | None = None,
    threshold: float | None = None,
    tile: bool | str = False,
    every: int = 1,
    bgr: bool = False,
) -> Iterator[StreamResult]:
    """`Segmenter.predict_stream`: one result per kept frame, in order (see the module).

    Arguments are checked and the source opened at once (a video that cannot be opened is
    an error here); the reader thread starts with the first result asked for."""
    size = segmenter.batch_size if batch_size is None else batch_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ArgumentError("batch_size", f"expected an integer >= 1, got {size!r}")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ArgumentError("every", f"expected an integer >= 1, got {every!r}")
    frames = open_frames(source, bgr)
    options = {"threshold": threshold, "tile": tile}
    return ResultStream(frames, _results(segmenter, frames, size, every, options))


class ResultStream(Iterator[StreamResult]):
    """The results of `predict_stream`: an iterator (a generator underneath) that also says
    what is known of its source (`fps`, `count`, `size`); `close()` stops it."""

    def __init__(self, source: FrameSource, results: Iterator[StreamResult]):
        self.source = source
        self._results = results

    fps = property(lambda self: self.source.fps)
    count = property(lambda self: self.source.count)
    size = property(lambda self: self.source.size)

    def __next__(self) -> StreamResult:
        return next(self._results)

    def close(self) -> None:
        self._results.close()
        self.source.release()  # also when no result was ever asked for

    def __enter__(self) -> ResultStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _results(
    segmenter: Any, frames: FrameSource, size: int, every: int, options: dict[str, Any]
) -> Iterator[StreamResult]:
    """Untiled, the decoder thread also resizes each frame to the model's input size, so
    the main thread only runs the model and maps its output back; the masks are those of
    `predict` on the same frames. Tiled, each batch goes through `predict`."""
    direct = options["tile"] is False
    prepare = segmenter._resized if direct else None
    reader = FrameReader(frames, every, queue_size=2 * size, prepare=prepare)
    try:
        for batch in batches(reader, size):
            if direct:
                resized = [frame.prepared for frame in batch]
                sizes = [frame.image.shape[:2] for frame in batch]
                masks = segmenter._masks_of_resized(resized, sizes, options["threshold"])
            else:
                masks = segmenter.predict([frame.image for frame in batch], **options)
            for frame, mask in zip(batch, masks, strict=True):
                yield StreamResult(frame.index, frame.timestamp, mask, frame.image)
    finally:
        reader.close()
