"""Run a model served over the Open Inference Protocol v2: segserve, Triton or KServe.

`Segmenter("http://HOST:PORT/v2/models/NAME")` opens this backend. It reads the model's
segkit metadata from `GET /v2/models/NAME` (the server's parameters), so preprocessing and
postprocessing stay in the client exactly as for a local model; each batch goes to
`POST /v2/models/NAME/infer` as binary tensor data (`runtime.oip`).

Inference is idempotent, so every request is retried on a lost connection, a read that
breaks off, and the statuses a restarting server answers (500, 502, 503, 504): up to
`RETRIES` times, with exponential backoff from `BACKOFF_S` (0.2, 0.4, 0.8, ... s, at most
`MAX_BACKOFF_S`). The connection pool (urllib3) is shared by all threads.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

import numpy as np

from runtime.backends.base import DEFAULT_OPTIONS, Backend, BackendOptions
from runtime.errors import ModelError
from runtime.oip import HEADER_LENGTH, decode_tensors, encode_tensors, metadata_from_response

RETRIES = 6
BACKOFF_S = 0.2
MAX_BACKOFF_S = 5.0
RETRY_STATUSES = (500, 502, 503, 504)
TIMEOUT_S = 120.0


def is_model_url(path: object) -> bool:
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


class RemoteBackend(Backend):
    """A model on an OIP v2 server; `path` is its URL, `http(s)://HOST:PORT/v2/models/NAME`."""

    name = "remote"
    device = "remote"

    def __init__(self, path: str | os.PathLike, options: BackendOptions = DEFAULT_OPTIONS):
        import urllib3

        self.path = os.fspath(path).rstrip("/")
        parts = urlsplit(self.path)
        segments = parts.path.strip("/").split("/")
        if len(segments) < 3 or segments[:2] != ["v2", "models"]:
            raise ModelError(self.path, "expected a model URL http(s)://HOST:PORT/v2/models/NAME")
        self.model_name = segments[2]
        retry = urllib3.Retry(
            total=RETRIES,
            backoff_factor=BACKOFF_S,
            backoff_max=MAX_BACKOFF_S,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=None,  # inference is idempotent: POST is retried too
            raise_on_status=False,
        )
        self._http = urllib3.PoolManager(
            num_pools=4, maxsize=16, retries=retry, timeout=urllib3.Timeout(TIMEOUT_S)
        )
        self.metadata = metadata_from_response(self._get_json(self.path), self.path)
        if not self.metadata.dynamic_batch:
            self.min_batch = self.max_batch = self.metadata.batch_size

    def _request(self, method: str, url: str, **kwargs):
        import urllib3

        try:
            response = self._http.request(method, url, **kwargs)
        except urllib3.exceptions.HTTPError as err:  # retries exhausted
            raise ModelError(self.path, f"the server does not answer ({err})") from err
        if response.status >= 400:
            raise ModelError(
                self.path, f"{method} {url}: HTTP {response.status}: {_reason(response.data)}"
            )
        return response

    def _get_json(self, url: str) -> dict:
        response = self._request("GET", url)
        try:
            return json.loads(response.data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelError(self.path, f"the server's answer is not JSON ({err})") from None

    def _run(self, images: np.ndarray) -> np.ndarray:
        meta = self.metadata
        body, headers = encode_tensors(
            "inputs",
            {meta.input_name: images},
            {"outputs": [{"name": meta.output_name, "parameters": {"binary_data": True}}]},
        )
        response = self._request("POST", f"{self.path}/infer", body=body, headers=headers)
        _, outputs = decode_tensors(response.data, response.headers.get(HEADER_LENGTH), "outputs")
        if meta.output_name not in outputs:
            raise ModelError(self.path, f"the answer has no {meta.output_name!r} output")
        return np.asarray(outputs[meta.output_name], dtype=np.float32)

    @property
    def closed(self) -> bool:
        return self._http is None

    def close(self) -> None:
        if getattr(self, "_http", None) is not None:
            self._http.clear()
        self._http = None


def _reason(data: bytes) -> str:
    try:
        return str(json.loads(data).get("error", data[:200]))
    except (ValueError, AttributeError):
        return data[:200].decode(errors="replace")
