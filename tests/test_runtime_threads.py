"""One Segmenter used from several threads gives exactly the sequential results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from runtime_models import exported_model, scene

from runtime import Segmenter


def test_concurrent_predictions_match_sequential(tmp_path_factory):
    path = exported_model(tmp_path_factory, gain=50.0)
    sizes = [(40, 60), (32, 32), (75, 30), (20, 90), (64, 64), (33, 47)]
    calls = [
        [scene(10 * call + i, *sizes[(call + i) % len(sizes)]) for i in range(1 + call % 3)]
        for call in range(24)
    ]  # 24 calls of 1-3 images of mixed sizes
    with Segmenter(path, batch_size=2, threads=1) as seg:
        expected = [seg.predict(images) for images in calls]
        with ThreadPoolExecutor(max_workers=6) as pool:
            results = list(pool.map(seg.predict, calls))
            tiled = list(pool.map(lambda images: seg.predict(images, tile=True), calls[:6]))
    for got, want in zip(results, expected, strict=True):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
    with Segmenter(path, batch_size=2, threads=1) as seg:
        for got, images in zip(tiled, calls[:6], strict=True):
            for a, b in zip(got, seg.predict(images, tile=True), strict=True):
                np.testing.assert_array_equal(a, b)
