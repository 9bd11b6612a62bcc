"""The Open Inference Protocol v2 (KServe, Triton) as plain functions: tensors to and from HTTP.

Both sides use it: `runtime.backends.remote` (the client) and `serving` (the server).

- Infer requests and responses are JSON, or the binary tensor data extension: a JSON header
  of `Inference-Header-Content-Length` bytes followed by the raw tensors, each input or output
  with `"parameters": {"binary_data_size": N}` in the header.
- Tensors are little-endian, row-major; datatypes are OIP's names (`FP32`, `UINT8`, ...).
- The model's segkit metadata travels as the `parameters` of the model metadata response
  (`segkit.<field>` -> its JSON text), so a client rebuilds `ModelMetadata` from the server.

Malformed requests raise `ProtocolError` with the HTTP status to answer (400, or 413 for a
body that is too large).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from runtime.errors import InputError
from runtime.metadata import ModelMetadata

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
DATATYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
NAMES = {np.dtype(dtype): name for name, dtype in DATATYPES.items()}


class ProtocolError(InputError):
    """A request that breaks the protocol or does not fit the model; `status` is the HTTP code."""

    def __init__(self, subject: str, problem: str, status: int = 400):
        super().__init__(subject, problem)
        self.status = status

    def __reduce__(self):
        return (type(self), (self.subject, self.problem, self.status))


def datatype_of(array: np.ndarray) -> str:
    return NAMES[array.dtype]


def encode_tensors(
    key: str, tensors: dict[str, np.ndarray], extra: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, str]]:
    """A binary-extension body holding `tensors` under `key` ("inputs" or "outputs"), and its
    headers; `extra` adds top-level fields (model name, id, requested outputs)."""
    entries, blobs = [], []
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        entries.append(
            {
                "name": name,
                "datatype": datatype_of(array),
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(data)},
            }
        )
        blobs.append(data)
    header = json.dumps({**(extra or {}), key: entries}).encode()
    headers = {HEADER_LENGTH: str(len(header)), "Content-Type": BINARY_CONTENT_TYPE}
    return header + b"".join(blobs), headers


def decode_tensors(body: bytes, header_length: str | None, key: str) -> tuple[dict, dict]:
    """(the JSON header, {name: array}) of a request or response body, JSON or binary."""
    document, blobs = _split(body, header_length)
    entries = document.get(key)
    if not isinstance(entries, list) or not entries:
        raise ProtocolError(key, f"the body has no {key!r} list")
    tensors, offset = {}, 0
    for index, entry in enumerate(entries):
        name, array, offset = _tensor(entry, index, key, blobs, offset)
        tensors[name] = array
    if offset != len(blobs):
        raise ProtocolError(key, f"{len(blobs) - offset} bytes of binary data were not used")
    return document, tensors


def model_metadata(name: str, meta: ModelMetadata, platform: str) -> dict[str, Any]:
    """The OIP model metadata response of a segkit model, its metadata as parameters."""
    batch = -1 if meta.dynamic_batch else meta.batch_size
    height, width = (-1, -1) if meta.dynamic_hw else meta.input_size
    return {
        "name": name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [
            {
                "name": meta.input_name,
                "datatype": "FP32",
                "shape": [batch, len(meta.mean), height, width],
            }
        ],
        "outputs": [
            {
                "name": meta.output_name,
                "datatype": "FP32",
                "shape": [batch, meta.num_classes, height, width],
            }
        ],
        "parameters": meta.to_props(),
    }


def metadata_from_response(document: dict[str, Any], source: str) -> ModelMetadata:
    """The `ModelMetadata` a model metadata response carries in its parameters."""
    parameters = document.get("parameters") if isinstance(document, dict) else None
    if not isinstance(parameters, dict):
        raise ProtocolError(source, "the model metadata has no parameters (not a segkit model?)")
    return ModelMetadata.from_props({k: str(v) for k, v in parameters.items()}, source)


def _split(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    length = len(body)
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ProtocolError(HEADER_LENGTH, f"not a number: {header_length!r}") from None
        if not 0 < length <= len(body):
            raise ProtocolError(HEADER_LENGTH, f"{length} does not fit a {len(body)}-byte body")
    try:
        document = json.loads(body[:length])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError("body", f"not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise ProtocolError("body", "expected a JSON object")
    return document, body[length:]


def _tensor(
    entry: Any, index: int, key: str, blobs: bytes, offset: int
) -> tuple[str, np.ndarray, int]:
    where = f"{key}[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ProtocolError(where, "expected an object with a name")
    name, datatype, shape = entry["name"], entry.get("datatype"), entry.get("shape")
    if datatype not in DATATYPES:
        raise ProtocolError(
            name, f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        )
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(name, f"bad shape {shape!r}: expected a list of sizes")
    dtype = np.dtype(DATATYPES[datatype]).newbyteorder("<")
    count = int(np.prod(shape, dtype=np.int64))
    size = (entry.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if size != count * dtype.itemsize or offset + size > len(blobs):
            raise ProtocolError(name, f"binary_data_size {size} does not fit {datatype} {shape}")
        array = np.frombuffer(blobs, dtype, count, offset).reshape(shape)
        return name, array.astype(dtype.newbyteorder("="), copy=False), offset + size
    try:
        array = np.asarray(entry.get("data"), dtype=dtype.newbyteorder("="))
    except (TypeError, ValueError) as err:
        raise ProtocolError(name, f"data is not {datatype} numbers ({err})") from None
    if array.size != count:
        raise ProtocolError(name, f"{array.size} values do not fill shape {shape}")
    return name, array.reshape(shape), offset


def to_json_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """An output as a JSON tensor (flat data)."""
    return {"name": name, "datatype": datatype_of(array), "shape": list(array.shape),
            "data": array.ravel().tolist()}  # fmt: skip
