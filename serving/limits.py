"""Limits a server applies before it does any work: body size and image pixel count.

A 560 KB PNG can state 24000x24000 pixels and take minutes and gigabytes to decode; the
header says so first. Both checks raise `ProtocolError` with HTTP 413.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.images import header_pixels
from runtime.oip import ProtocolError

MAX_BODY_MB = 32.0
MAX_PIXELS = 40_000_000  # 40 megapixels, about a 7700x5200 photo


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = int(MAX_BODY_MB * 1e6)
    max_pixels: int | None = MAX_PIXELS

    def check_length(self, length: int | str | None) -> None:
        """The announced Content-Length (or the body's length) against the body limit."""
        if length is None:
            return
        try:
            size = int(length)
        except ValueError:
            raise ProtocolError("Content-Length", f"not a number: {length!r}") from None
        if size > self.max_body_bytes:
            raise ProtocolError(
                "body",
                f"{size:,} bytes is more than the limit of {self.max_body_bytes:,} "
                "(segserve --max-body-mb)",
                status=413,
            )

    def check_image(self, data: bytes) -> None:
        """The pixel count the image's header states, before it is decoded."""
        if self.max_pixels is None:
            return
        pixels = header_pixels(data)
        if pixels is not None and pixels > self.max_pixels:
            raise ProtocolError(
                "image",
                f"{pixels:,} pixels is more than the limit of {self.max_pixels:,} "
                "(segserve --max-pixels)",
                status=413,
            )
