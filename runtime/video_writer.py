"""Writing a video (the `segpredict --overlay` of a clip) with OpenCV, completed by a rename.

Frames go to a hidden `.<name>.partial<suffix>` beside the target; `close()` finishes the file
and renames it into place, so a reader never sees a half-written video under the real name.
A stream that ends early still gets its video, with the frames written until then. The codec
is `mp4v` for .mp4/.m4v/.mov, MJPG for .avi; a codec this OpenCV build cannot write is an
`ArgumentError` naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import ArgumentError

CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}
DEFAULT_FPS = 25.0


class VideoWriter:
    """RGB frames of one size into `path` at `fps`; the size is the first frame's."""

    def __init__(self, path: str | os.PathLike, fps: float | None):
        self.path = Path(path)
        codec = CODECS.get(self.path.suffix.lower())
        if codec is None:
            raise ArgumentError(self.path, f"unknown video type; use one of {', '.join(CODECS)}")
        self.fourcc = cv2.VideoWriter_fourcc(*codec)
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self.partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = rgb.shape[:2]
            self._writer = cv2.VideoWriter(
                str(self.partial), self.fourcc, self.fps, (width, height)
            )
            if not self._writer.isOpened():
                self._writer = None
                raise ArgumentError(
                    self.path, "this OpenCV build cannot write the video (codec or folder)"
                )
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finish the file and move it into place (nothing is written without frames)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self.partial, self.path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
