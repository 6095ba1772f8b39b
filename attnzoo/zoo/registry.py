"""Model registry: `register` a constructor, then `create_model(name, ...)` / `list_models()`."""

import difflib
import fnmatch
import importlib
import os
import pkgutil
from collections.abc import Callable

from flax import nnx

_MODELS: dict[str, Callable[..., nnx.Module]] = {}


def register(name: str) -> Callable:
    """Decorator registering a model constructor under `name`."""

    def wrap(constructor: Callable[..., nnx.Module]) -> Callable[..., nnx.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = constructor
        return constructor

    return wrap


def _import_families() -> None:
    """Imports every family package under `attnzoo/zoo/`, running its `@register`s."""
    for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if info.ispkg:
            importlib.import_module(f"attnzoo.zoo.{info.name}")


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models matching a glob `pattern`."""
    _import_families()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_constructor(name: str) -> Callable[..., nnx.Module]:
    _import_families()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (see attnzoo.list_models())")
    return _MODELS[name]


def create_model(
    name: str, *, rngs: nnx.Rngs | None = None, pretrained: str | None = None, **kwargs
) -> nnx.Module:
    """Builds registered model `name` with `kwargs`.

    `pretrained` is a training workdir or checkpoint directory written by `attnzoo.train`;
    its params are loaded where names and shapes match (see `attnzoo.zoo.pretrained`).
    Params are created unsharded (works with or without a mesh); the trainer places them
    on its mesh from their logical axis names.
    """
    constructor = get_constructor(name)
    with nnx.use_eager_sharding(False):
        model = constructor(rngs=rngs if rngs is not None else nnx.Rngs(0), **kwargs)
    if pretrained is not None:
        from attnzoo.zoo.pretrained import load_pretrained

        load_pretrained(model, pretrained)
    return model
