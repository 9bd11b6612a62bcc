"""The model registry: `@register_model` factories, `create_model`, `list_models`, `model_spec`.

Each entry records what the architecture has (`ModelSpec`: a pretrained encoder, attention
gates, deep supervision) and the keyword arguments its factory takes, so that callers ask the
registry instead of testing the architecture's name.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.errors import ArgumentError
from trainer.models.base import SegmentationModel

ModelFactory = Callable[..., SegmentationModel]

_PRIMITIVES = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows of an architecture besides how to build it."""

    name: str
    factory: ModelFactory
    arguments: tuple[str, ...]  # the factory's keyword arguments: the model config
    pretrained_encoder: bool = False  # an encoder that can start from ImageNet weights
    attention_gates: bool = False  # attention gates on the skips (`segtrain plot attention`)
    deep_supervision: bool = False  # extra training-only heads (`deep_supervision=True`)

    def accepts(self, argument: str) -> bool:
        return argument in self.arguments

    def default(self, argument: str) -> Any:
        """The factory's default value of `argument`."""
        return inspect.signature(self.factory).parameters[argument].default


_SPECS: dict[str, ModelSpec] = {}


def register_model(
    fn: ModelFactory | None = None,
    *,
    pretrained_encoder: bool = False,
    attention_gates: bool = False,
    deep_supervision: bool = False,
):
    """Register a factory under its function name; its keyword arguments are the model config.

    Use as `@register_model` or `@register_model(attention_gates=True, ...)` to record the
    architecture's capabilities. The returned factory validates keyword names, fills in
    defaults, and sets `model.arch` and `model.config` (JSON-serializable values only) on the
    model it builds.
    """
    capabilities = {
        "pretrained_encoder": pretrained_encoder,
        "attention_gates": attention_gates,
        "deep_supervision": deep_supervision,
    }
    if fn is None:
        return functools.partial(_register, capabilities=capabilities)
    return _register(fn, capabilities)


def _register(fn: ModelFactory, capabilities: dict[str, bool]) -> ModelFactory:
    name = fn.__name__
    if name in _SPECS:
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

    _SPECS[name] = ModelSpec(name, factory, tuple(accepted), **capabilities)
    return factory


def model_spec(name: str) -> ModelSpec:
    """The registry entry of `name`; unknown names raise `ArgumentError` with suggestions."""
    if name not in _SPECS:
        raise ArgumentError("arch", _unknown(name, sorted(_SPECS), "model"))
    return _SPECS[name]


def model_entrypoint(name: str) -> ModelFactory:
    """The registered factory for `name`; unknown names raise `ArgumentError` (a ValueError)."""
    return model_spec(name).factory


def create_model(name: str, **config: Any) -> SegmentationModel:
    """Build model `name`; keyword arguments that are `None` are dropped (the default is kept)."""
    factory = model_entrypoint(name)
    return factory(**{key: value for key, value in config.items() if value is not None})


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted, optionally filtered by an fnmatch `pattern`."""
    names = _SPECS if pattern is None else fnmatch.filter(_SPECS, pattern)
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
