"""`Segmenter`: masks from an exported model of any size, on ONNX Runtime, OpenVINO or TensorRT.

Each image is resized to the model's input size (the same antialiased bilinear resize as
training's evaluation), run in batches of `batch_size`, and its probabilities are resized
back to the image's own size before thresholding, so every mask has its image's height and
width. With `tile=True` an image is instead segmented at full resolution in overlapping
tiles of the input size (see `runtime.tiling`); `tile="auto"` does so only for images more
than `AUTO_TILE_FACTOR` times the input size on a side. Tiling is off by default because
training resizes whole images to the input size: a model sees objects at that scale.

A Segmenter holds no per-call state: `predict` may be called from several threads at once
(ONNX Runtime sessions run concurrently, OpenVINO gives each thread its own infer request;
the TensorRT backend serializes its runs).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from runtime.backends import Backend, open_backend
from runtime.errors import ArgumentError, ModelError
from runtime.inputs import ARRAY, SINGLE, Inputs, as_inputs, load_image
from runtime.metadata import ModelMetadata
from runtime.postprocess import resize_probs, to_mask
from runtime.preprocess import preprocess, resize_bilinear
from runtime.stream import ResultStream, predict_stream
from runtime.tiling import tiled_probabilities

AUTO_TILE_FACTOR = 4
MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3
TILE_CHOICES = (False, True, "auto")


class Segmenter:
    """Segment images with an exported segkit model (`.onnx`, OpenVINO IR `.xml` + `.bin`, or
    `.engine` + its `.json`).

    - `backend`: "auto" (by file suffix; an `.onnx` on the CPU runs on the fastest installed
      backend, OpenVINO where installed, see `runtime.backends`), "onnxruntime", "openvino"
      or "tensorrt"; `repr()` says which was picked and in what precision.
    - `device`: "auto" (GPU when the backend has one, else CPU), "cpu" or "cuda"; "cuda" on a
      machine without CUDA raises `ModelError`.
    - `batch_size`: images (or tiles) per model run.
    - `threads`: CPU inference threads of ONNX Runtime or OpenVINO (None: their default).
    - `precision`: "auto", "fp32" or "bf16": OpenVINO's inference precision ("auto": bf16
      where the CPU has it natively, fp32 elsewhere); the other backends run the graph's own.
    - `threshold`: binary models' mask threshold (None: the model's own from its metadata);
      `predict(threshold=...)` overrides it per call.
    - `strict`: raise instead of warning when ONNX Runtime falls back to fewer providers.
    - `input_size`: (height, width) to run at, for models exported with dynamic H/W only
      (None: the metadata's input size, the size the model was trained at).
    - `tile_overlap`: overlap of neighbouring tiles as a fraction of the tile (0 <= x < 1).
    - `max_pixels`: images with more pixels are refused with `ImageTooLarge` (files before
      they are decoded, from their header); the default is Pillow's `MAX_IMAGE_PIXELS`
      (about 89 megapixels); None lifts the limit.

    `model_path` may also be an open `Backend`, which the Segmenter then owns and closes.
    A model file without segkit metadata raises `MetadataError`: without its input size,
    normalization and threshold the masks would be silently wrong.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | Backend,
        backend: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        threads: int | None = None,
        threshold: float | None = None,
        strict: bool = False,
        input_size: tuple[int, int] | None = None,
        tile_overlap: float = 0.5,
        max_pixels: int | None = MAX_PIXELS,
        precision: str = "auto",
    ):
        if not _is_int(batch_size) or batch_size < 1:
            raise ArgumentError("batch_size", f"expected an integer >= 1, got {batch_size!r}")
        if not _is_real(tile_overlap) or not 0.0 <= tile_overlap < 1.0:
            raise ArgumentError("tile_overlap", f"expected 0 <= overlap < 1, got {tile_overlap!r}")
        if max_pixels is not None and (not _is_int(max_pixels) or max_pixels < 1):
            raise ArgumentError(
                "max_pixels", f"expected None or an integer >= 1, got {max_pixels!r}"
            )
        self.max_pixels = max_pixels
        self.batch_size = int(batch_size)
        self.tile_overlap = float(tile_overlap)
        if isinstance(model_path, Backend):  # an open backend, e.g. a checkpoint's model
            self.backend: Backend = model_path
        else:
            self.backend = open_backend(model_path, backend, device, threads, strict, precision)
        try:
            self.metadata: ModelMetadata = self.backend.metadata
            if self.metadata.preprocess:
                raise ModelError(
                    self.backend.path,
                    "this graph preprocesses inside (exported with --preprocess) and takes "
                    "raw uint8 pixels; serve it with Triton, or use the plain export here",
                )
            self.threshold = self._check_threshold(threshold)
            self.input_size = self.metadata.run_size(input_size, "input_size", self.backend.path)
        except (ArgumentError, ModelError):
            self.backend.close()
            raise

    # --- public API ---------------------------------------------------------------------

    def predict(
        self,
        images: Any,
        *,
        threshold: float | None = None,
        bgr: bool = False,
        tile: bool | str = False,
    ) -> Any:
        """Masks: 0/1 uint8 (binary) or class ids (multi-class), each at its image's size.

        `images`: a path, a numpy image, a list of them, or an NxHxWxC array (see
        `runtime.inputs`). One input gives one mask, a list a list, a batch an NxHxW array.
        """
        cutoff = self.threshold if threshold is None else self._check_threshold(threshold)
        return self._map(images, bgr, tile, lambda probs: to_mask(probs, cutoff))

    def predict_stream(
        self,
        source: Any,
        *,
        batch_size: int | None = None,
        threshold: float | None = None,
        tile: bool | str = False,
        every: int = 1,
        bgr: bool = False,
    ) -> ResultStream:
        """Masks of a video file, camera index, RTSP/HTTP URL or iterable of frames, as a
        generator of `StreamResult`s (frame index, timestamp, mask at the frame's size, frame),
        in order; every `every`-th frame. Frames decode in a background thread while the
        previous batch runs; closing the generator releases the capture (`runtime.stream`).
        `bgr` applies to iterables of OpenCV frames (captures are converted already)."""
        return predict_stream(
            self, source, batch_size=batch_size, threshold=threshold, tile=tile, every=every,
            bgr=bgr,
        )  # fmt: skip

    def predict_proba(self, images: Any, *, bgr: bool = False, tile: bool | str = False) -> Any:
        """Probabilities at each image's size: HxW float32 (binary) or HxWxC (multi-class)."""
        return self._map(images, bgr, tile, lambda probs: probs)

    @property
    def classes(self) -> list[str]:
        return self.metadata.classes

    def close(self) -> None:
        """Free the backend's session / device memory; the Segmenter cannot be used after."""
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        meta = self.metadata
        return (
            f"Segmenter({str(self.backend.path)!r}, backend={self.backend.name!r}, "
            f"device={self.backend.device!r}, precision={self.backend.precision!r}, "
            f"arch={meta.arch!r}, classes={meta.classes}, "
            f"input_size={self.input_size})"
        )

    # --- internals ----------------------------------------------------------------------

    def _map(
        self, images: Any, bgr: bool, tile: bool | str, finish: Callable[[np.ndarray], Any]
    ) -> Any:
        if tile not in TILE_CHOICES:
            raise ArgumentError("tile", f"expected True, False or 'auto', got {tile!r}")
        inputs = as_inputs(images)
        if inputs.kind == ARRAY and len(inputs.items) == 0:
            return self._empty_batch(inputs.items, finish)
        return inputs.pack([finish(probs) for probs in self._probabilities(inputs, bgr, tile)])

    def _probabilities(self, inputs: Inputs, bgr: bool, tile: bool | str) -> Iterator[np.ndarray]:
        """Per input, in order, its probabilities at its own size (chunks of batch_size)."""
        items = inputs.items
        for start in range(0, len(items), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(items)))
            images = [load_image(items[i], _name(inputs, i), bgr, self.max_pixels) for i in chunk]
            tiled = [self._tiles(image, tile) for image in images]
            direct = [image for image, t in zip(images, tiled, strict=True) if not t]
            direct_probs = iter(self._run(direct) if direct else [])
            for image, use_tiles in zip(images, tiled, strict=True):
                probs = self._run_tiled(image) if use_tiles else next(direct_probs)
                yield resize_probs(probs, image.shape[:2])

    def _resized(self, image: np.ndarray) -> np.ndarray:
        """An HxWx3 uint8 RGB image at the run size: the first step of `_run`, done ahead
        (`predict_stream` does it in its decoder thread)."""
        return resize_bilinear(image, self.input_size)

    def _masks_of_resized(
        self, resized: list[np.ndarray], sizes: list[tuple[int, int]], threshold: float | None
    ) -> list[np.ndarray]:
        """The masks `predict` gives for images of `sizes` whose `_resized` forms these are."""
        cutoff = self.threshold if threshold is None else self._check_threshold(threshold)
        probs = self._run(resized)
        return [
            to_mask(resize_probs(p, size), cutoff) for p, size in zip(probs, sizes, strict=True)
        ]

    def _run(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, C, h, w) probabilities of uint8 RGB images resized to the run size."""
        meta = self.metadata
        return self.backend.run(preprocess(images, self.input_size, meta.mean, meta.std))

    def _run_tiled(self, image: np.ndarray) -> np.ndarray:
        return tiled_probabilities(
            image, self.input_size, self.tile_overlap, self._run, self.batch_size
        )

    def _tiles(self, image: np.ndarray, tile: bool | str) -> bool:
        if tile != "auto":
            return bool(tile)
        height, width = image.shape[:2]
        run_h, run_w = self.input_size
        return height > AUTO_TILE_FACTOR * run_h or width > AUTO_TILE_FACTOR * run_w

    def _empty_batch(self, batch: np.ndarray, finish: Callable[[np.ndarray], Any]) -> np.ndarray:
        """The result for a 0xHxWxC array: a (0, H, W[, C]) array of the result's dtype."""
        channels = self.metadata.num_classes
        sample = finish(np.zeros((1, 1) if channels == 1 else (1, 1, channels), np.float32))
        return np.empty((0, *batch.shape[1:3], *sample.shape[2:]), dtype=sample.dtype)

    def _check_threshold(self, threshold: float | None) -> float:
        if threshold is None:
            return self.metadata.threshold
        if self.metadata.num_classes > 1:
            raise ArgumentError(
                "threshold",
                f"this model has {self.metadata.num_classes} classes and takes the argmax; "
                "a threshold applies to binary models only",
            )
        if not _is_real(threshold) or not 0.0 <= threshold <= 1.0:
            raise ArgumentError("threshold", f"expected a number in [0, 1], got {threshold!r}")
        return float(threshold)


def _name(inputs: Inputs, index: int) -> str:
    """How an input is named in errors: its path, or "image" / "image <index>"."""
    item = inputs.items[index]
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return "image" if inputs.kind == SINGLE else f"image {index}"


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
