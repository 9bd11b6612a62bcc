"""The model registry: `@register_model` factories, `create_model`, `list_models`."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import os
from collections.abc import Callable
from typing import Any

from trainer.models.base import SegmentationModel

ModelFactory = Callable[..., SegmentationModel]

_PRIMITIVES = (str, int, float, bool, type(None))
_FACTORIES: dict[str, ModelFactory] = {}


def register_model(fn: ModelFactory) -> ModelFactory:
    """Register a factory under its function name; its keyword arguments are the model config.

    The returned factory validates keyword names, fills in defaults, and sets `model.arch` and
    `model.config` (JSON-serializable values only) on the model it builds.
    """
    name = fn.__name__
    if name in _FACTORIES:
        raise ValueError(f"model {name!r} is already registered")
    signature = inspect.signature(fn)
    for param in signature.parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise ValueError(f"model {name!r}: argument {param.name!r} must be keyword-only")
    accepted = list(signature.parameters)

    @functools.wraps(fn)
    def factory(**kwargs: Any) -> SegmentationModel:
        for key in kwargs:
            if key not in accepted:
                raise TypeError(f"model {name!r}: {_unknown(key, accepted, 'argument')}")
        bound = signature.bind(**kwargs)
        bound.apply_defaults()
        config = {key: _primitive(name, key, value) for key, value in bound.arguments.items()}
        model = fn(**config)
        model.arch = name
        model.config = dict(config)
        return model

    _FACTORIES[name] = factory
    return factory


def model_entrypoint(name: str) -> ModelFactory:
    """The registered factory for `name`; unknown names raise `ValueError` with suggestions."""
    if name not in _FACTORIES:
        raise ValueError(_unknown(name, sorted(_FACTORIES), "model"))
    return _FACTORIES[name]


def create_model(name: str, **config: Any) -> SegmentationModel:
    """Build model `name`; keyword arguments that are `None` are dropped (the default is kept)."""
    factory = model_entrypoint(name)
    return factory(**{key: value for key, value in config.items() if value is not None})


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by an fnmatch `pattern`."""
    names = _FACTORIES if pattern is None else fnmatch.filter(_FACTORIES, pattern)
    return sorted(names)


def _unknown(given: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(given, known, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown {what} {given!r}{hint} (available: {', '.join(known)})"


def _primitive(model: str, key: str, value: Any) -> Any:
    """Paths become strings; anything else that JSON cannot store is refused."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, _PRIMITIVES):
        raise TypeError(
            f"model {model!r}: argument {key!r} must be a str, int, float, bool or None, "
            f"got {type(value).__name__}"
        )
    return value
