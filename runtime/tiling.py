"""Sliding-window inference: a large image segmented tile by tile at full resolution.

Tiles have the model's input size and overlap by `overlap` (a fraction of the tile); their
starts are spread evenly so the last tile ends at the image border. Each tile's
probabilities are weighted by a raised-cosine (Hann) window, highest in the tile's centre
and near zero at its edges, where a convolutional network sees the least context; the
weighted sum divided by the summed weights blends the tiles without seams. An image smaller
than a tile is mirror-padded up to the tile size and the padding is cropped off again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

TileRunner = Callable[[list[np.ndarray]], np.ndarray]  # tiles (HxWx3 uint8) -> (n, C, h, w)


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of size `tile` covering `length` pixels with at least `overlap`."""
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def hann_window(height: int, width: int) -> np.ndarray:
    """(height, width) float32 raised-cosine weights, all > 0, peaking at the centre."""

    def one_axis(n: int) -> np.ndarray:
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(n) + 0.5) / n)

    return np.outer(one_axis(height), one_axis(width)).astype(np.float32)


def tiled_probabilities(
    image: np.ndarray,
    tile: tuple[int, int],
    overlap: float,
    run: TileRunner,
    batch_size: int,
) -> np.ndarray:
    """(C, H, W) float32 probabilities of an HxWx3 uint8 image, blended from overlapping tiles."""
    height, width = image.shape[:2]
    tile_h, tile_w = tile
    padded = np.pad(
        image,
        ((0, max(0, tile_h - height)), (0, max(0, tile_w - width)), (0, 0)),
        mode="symmetric",
    )
    window = hann_window(tile_h, tile_w)
    total = None
    weights = np.zeros(padded.shape[:2], dtype=np.float32)
    for corners in _chunks(_corners(padded.shape[:2], tile, overlap), batch_size):
        tiles = [padded[y : y + tile_h, x : x + tile_w] for y, x in corners]
        probs = run(tiles)
        if total is None:
            total = np.zeros((probs.shape[1], *padded.shape[:2]), dtype=np.float32)
        for (y, x), prob in zip(corners, probs, strict=True):
            total[:, y : y + tile_h, x : x + tile_w] += prob * window
            weights[y : y + tile_h, x : x + tile_w] += window
    total /= weights
    return total[:, :height, :width]


def _corners(size: tuple[int, int], tile: tuple[int, int], overlap: float) -> list[tuple[int, int]]:
    rows = tile_starts(size[0], tile[0], overlap)
    cols = tile_starts(size[1], tile[1], overlap)
    return [(y, x) for y in rows for x in cols]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
