"""The Ray Serve deployment: Open Inference Protocol v2 endpoints and `/segment`, batched.

Every replica holds one `Segmenter`. Requests are batched with Serve's dynamic batching
(`serve.batch`): the preprocessed tensors of concurrent requests, OIP `infer` and `/segment`
alike, run as one model call (grouped by size), off the event loop, so the next batch forms
while one runs.

Endpoints (OIP v2, the protocol of Triton and KServe):
- `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2` (server metadata);
- `GET /v2/models/NAME` (name, platform, inputs, outputs; the segkit metadata as parameters),
  `GET /v2/models/NAME/ready`, `GET /v2/models/NAME/stats` (inference and execution counts of
  the replica that answers);
- `POST /v2/models/NAME/infer`: preprocessed tensors, JSON or the binary tensor extension;
- `POST /segment[?format=png|json][&threshold=T]`: an encoded image in, its mask out (PNG at
  the image's own size, or labelme JSON polygons).
A bad request is answered 400 (404 for an unknown model, 413 for a body or an image over the
limits) with `{"error": "<one line>"}`; the replica keeps serving.

Everything the deployment class uses is defined above it: Serve captures the class (and the
module globals it refers to) when it is decorated.
"""

import asyncio
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from runtime import Segmenter
from runtime.errors import SegkitError
from runtime.images import decode_image
from runtime.oip import (
    HEADER_LENGTH,
    ProtocolError,
    decode_tensors,
    encode_tensors,
    model_metadata,
    to_json_tensor,
)
from runtime.polygons import mask_to_labelme
from runtime.postprocess import resize_probs, to_mask
from runtime.preprocess import preprocess
from serving.limits import Limits

PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "openvino": "openvino", "tensorrt": "tensorrt_plan"}
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_MS = 10.0
DEFAULT_WAIT_S = DEFAULT_BATCH_WAIT_MS / 1000

api = FastAPI(title="segkit", docs_url=None, redoc_url=None)


@api.exception_handler(SegkitError)
async def _bad_request(request: Request, err: SegkitError) -> JSONResponse:
    status = getattr(err, "status", 400)
    return JSONResponse({"error": str(err).splitlines()[0]}, status_code=status)


@dataclass(frozen=True)
class ServerConfig:
    """What `segserve` passes to each replica."""

    model: str
    name: str
    max_batch: int = DEFAULT_MAX_BATCH
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    threads: int | None = None
    limits: Limits = Limits()


def _wants_binary(document: dict) -> bool:
    requested = document.get("outputs") or []
    params = document.get("parameters") or {}
    return bool(params.get("binary_data_output")) or any(
        (o.get("parameters") or {}).get("binary_data") for o in requested if isinstance(o, dict)
    )


def _threshold(text: str | None, num_classes: int) -> float | None:
    if text is None:
        return None
    if num_classes > 1:
        raise ProtocolError("threshold", "this model has several classes and takes the argmax")
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError("threshold", f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ProtocolError("threshold", f"expected a number in [0, 1], got {value}")
    return value


@serve.deployment(ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class SegmentServer:
    """One replica: a Segmenter behind the endpoints of the module docstring."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.seg = Segmenter(
            config.model,
            batch_size=config.max_batch,
            threads=config.threads,
            max_pixels=config.limits.max_pixels,
        )
        self.meta = self.seg.metadata
        self.platform = PLATFORMS.get(self.seg.backend.name, self.seg.backend.name)
        self.counts: dict[str, int] = defaultdict(int)
        self.run_batch.set_max_batch_size(config.max_batch)
        self.run_batch.set_batch_wait_timeout_s(config.batch_wait_ms / 1000)

    # --- health and metadata ------------------------------------------------------------

    @api.get("/v2/health/live")
    async def live(self) -> dict:
        return {"live": True}

    @api.get("/v2/health/ready")
    async def ready(self) -> dict:
        return {"ready": not self.seg.backend.closed}

    @api.get("/v2")
    async def server_metadata(self) -> dict:
        from trainer import __version__

        return {"name": "segkit", "version": __version__, "extensions": ["binary_tensor_data"]}

    @api.get("/v2/models/{name}")
    async def model(self, name: str) -> dict:
        self._check_name(name)
        return model_metadata(self.config.name, self.meta, self.platform)

    @api.get("/v2/models/{name}/ready")
    async def model_ready(self, name: str) -> dict:
        self._check_name(name)
        return {"name": name, "ready": True}

    @api.get("/v2/models/{name}/stats")
    async def stats(self, name: str) -> dict:
        self._check_name(name)
        return {"model_stats": [{"name": name, **self.counts}]}

    # --- inference ----------------------------------------------------------------------

    @api.post("/v2/models/{name}/infer")
    async def infer(self, name: str, request: Request) -> Response:
        self._check_name(name)
        body = await self._body(request)
        header = request.headers.get(HEADER_LENGTH)
        document, inputs = decode_tensors(body, header, "inputs")
        images = inputs.get(self.meta.input_name)
        if images is None:
            raise ProtocolError("inputs", f"no input named {self.meta.input_name!r}")
        self.seg.backend.check_input(images)
        probs = await self.run_batch(np.ascontiguousarray(images))
        outputs = {self.meta.output_name: probs}
        extra = {"model_name": name, "model_version": "1"}
        if "id" in document:
            extra["id"] = document["id"]
        if header is not None or _wants_binary(document):
            data, headers = encode_tensors("outputs", outputs, extra)
            return Response(data, headers=headers)
        tensors = [to_json_tensor(k, v) for k, v in outputs.items()]
        return JSONResponse({**extra, "outputs": tensors})

    @api.post("/segment")
    async def segment(self, request: Request) -> Response:
        body = await self._body(request)
        self.config.limits.check_image(body)
        options = dict(request.query_params)
        output = options.pop("format", "png")
        threshold = _threshold(options.pop("threshold", None), self.meta.num_classes)
        if options or output not in ("png", "json"):
            given = dict(request.query_params)
            raise ProtocolError("query", f"expected format=png|json and threshold=, got {given}")
        image = decode_image(body, "image")
        batch = preprocess([image], self.seg.input_size, self.meta.mean, self.meta.std)
        probs = (await self.run_batch(batch))[0]
        cutoff = self.seg.threshold if threshold is None else threshold
        mask = to_mask(resize_probs(probs, image.shape[:2]), cutoff)
        if output == "json":
            return JSONResponse(mask_to_labelme(mask, "image", self.seg.classes, 1.0))
        ok, png = cv2.imencode(".png", mask * 255 if self.meta.num_classes == 1 else mask)
        return Response(png.tobytes(), media_type="image/png")

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=DEFAULT_WAIT_S)
    async def run_batch(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """The model's probabilities of each request's (n, C, H, W) tensor, run together."""
        results: list[np.ndarray | None] = [None] * len(batches)
        by_shape: dict[tuple, list[int]] = defaultdict(list)
        for index, batch in enumerate(batches):
            by_shape[batch.shape[1:]].append(index)
        for indices in by_shape.values():
            joined = np.concatenate([batches[i] for i in indices])
            probs = await asyncio.to_thread(self.seg.backend.run, joined)
            self.counts["execution_count"] += 1
            self.counts["inference_count"] += len(joined)
            start = 0
            for i in indices:
                results[i] = probs[start : start + len(batches[i])]
                start += len(batches[i])
        self.counts["requests"] += len(batches)
        return results

    # --- helpers ------------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if name != self.config.name:
            raise ProtocolError(
                "model", f"unknown model {name!r}; this server has {self.config.name!r}", status=404
            )

    async def _body(self, request: Request) -> bytes:
        limits = self.config.limits
        limits.check_length(request.headers.get("content-length"))
        body = await request.body()
        limits.check_length(len(body))
        if not body:
            raise ProtocolError("body", "empty request body")
        return body


def build_app(config: ServerConfig, replicas: int = 1):
    """The Serve application of `config` with `replicas` replicas."""
    return SegmentServer.options(num_replicas=replicas).bind(config)


__all__ = ["ServerConfig", "SegmentServer", "build_app"]
