"""Model registry: `register` a constructor, then `create_model(name, ...)` / `list_models()`.

A name is an architecture (`vit_tiny`) or a pretrained tag `ARCH.WEIGHTS` (`vit_tiny.fmnist`,
see `attnzoo.zoo.weights`). Each architecture states which params are its classifier (reset
when `num_classes` changes) and its learned position embeddings (resampled when the token
grid or sequence length changes) so pretrained weights adapt to new shapes.
"""

import base64
import dataclasses
import difflib
import fnmatch
import importlib
import io
import json
import os
import pkgutil
from collections.abc import Callable

import jax
import numpy as np
from flax import nnx


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A registered constructor and how its params adapt to new shapes.

    `classifier`: regex of the classifier's '/'-joined param paths; `posemb`: regex ->
    `"2d"` (a `[gh*gw, dim]` table over the model's `grid`) or `"1d"` (`[n, dim]`).
    """

    constructor: Callable[..., nnx.Module]
    classifier: str = ""
    posemb: tuple[tuple[str, str], ...] = ()


_MODELS: dict[str, Architecture] = {}


def register(name: str, *, classifier: str = "", posemb: dict[str, str] | None = None):
    """Decorator registering a model constructor under `name` (see `Architecture`)."""
    if "." in name:
        raise ValueError(f"model name {name!r} may not contain '.' (it separates weight tags)")

    def wrap(constructor: Callable[..., nnx.Module]) -> Callable[..., nnx.Module]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        kinds = tuple((posemb or {}).items())
        if any(kind not in ("1d", "2d") for _, kind in kinds):
            raise ValueError(f"posemb kinds of {name!r} must be '1d' or '2d', got {kinds}")
        _MODELS[name] = Architecture(constructor, classifier, kinds)
        return constructor

    return wrap


def _import_families() -> None:
    """Imports every family package under `attnzoo/zoo/`, running its `@register`s."""
    for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
        if info.ispkg:
            importlib.import_module(f"attnzoo.zoo.{info.name}")


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Sorted names of registered models matching a glob `pattern`; with `pretrained`,
    the pretrained tags (`ARCH.WEIGHTS`) instead."""
    _import_families()
    from attnzoo.zoo.weights import tags

    names = tags() if pretrained else _MODELS
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_architecture(name: str) -> Architecture:
    _import_families()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (see attnzoo.list_models())")
    return _MODELS[name]


def get_constructor(name: str) -> Callable[..., nnx.Module]:
    return get_architecture(name).constructor


def build(name: str, kwargs: dict, *, rngs: nnx.Rngs | None = None) -> nnx.Module:
    """Architecture `name` built with `kwargs`, unsharded, remembering both (`model_spec`).

    Array kwargs (GMAN's spatial embedding) are stored in the spec as exact `.npy` bytes
    (`{"npy_base64": ...}`); `build` takes either form.
    """
    constructor = get_constructor(name)
    decoded = {k: _decode_array(v) for k, v in kwargs.items()}
    with nnx.use_eager_sharding(False):
        model = constructor(rngs=rngs if rngs is not None else nnx.Rngs(0), **decoded)
    try:
        model.model_spec = json.dumps({"name": name, "kwargs": kwargs}, default=_json_value)
    except TypeError:  # kwargs that JSON cannot hold (callables): no spec to store
        model.model_spec = ""
    return model


_NPY = "npy_base64"


def _json_value(value) -> str | dict:
    """JSON form of a kwarg `json` cannot write: an array as `.npy` bytes, a dtype by name."""
    if isinstance(value, (np.ndarray, jax.Array)):
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value), allow_pickle=False)
        return {_NPY: base64.b64encode(buffer.getvalue()).decode("ascii")}
    return np.dtype(value).name


def _decode_array(value):
    """The array a `_json_value` dict stands for; other values unchanged."""
    if isinstance(value, dict) and set(value) == {_NPY}:
        return np.load(io.BytesIO(base64.b64decode(value[_NPY])), allow_pickle=False)
    return value


def model_spec(model: nnx.Module) -> dict | None:
    """`{"name", "kwargs"}` a model was built from by `create_model`, or None."""
    spec = getattr(model, "model_spec", None)
    return json.loads(spec) if spec else None


def create_model(
    name: str, *, rngs: nnx.Rngs | None = None, pretrained: bool | str | None = None, **kwargs
) -> nnx.Module:
    """Builds model `name` (an architecture or a pretrained tag) with `kwargs`.

    `pretrained`: True loads a tag's weights (from the cache, see `attnzoo.zoo.hub`); a
    string names a tag, a `.safetensors` release, or a training workdir / checkpoint
    directory written by `attnzoo.train`. The architecture's shape arguments come from that
    source (its stored config); `kwargs` override them: a new `num_classes` resets the
    classifier, a new image size or length resamples learned position embeddings. Params
    are created unsharded (works with or without a mesh); the trainer places them on its
    mesh from their logical axis names.
    """
    from attnzoo.zoo.pretrained import load_pretrained, read_weights, resolve

    arch, source = resolve(name, pretrained)
    if source is None:
        stored = get_tag_kwargs(name)
        return build(arch, {**stored, **kwargs}, rngs=rngs)
    weights = read_weights(source)
    if weights.spec is not None and weights.spec["name"] != arch:
        raise ValueError(
            f"{weights.where} holds a {weights.spec['name']!r} model, not {arch!r}; "
            f"use create_model({weights.spec['name']!r}, pretrained=...)"
        )
    stored = weights.spec["kwargs"] if weights.spec is not None else {}
    model = build(arch, {**stored, **kwargs}, rngs=rngs)
    load_pretrained(model, weights)
    return model


def get_tag_kwargs(name: str) -> dict:
    """The architecture kwargs of tag `name` (empty for a plain architecture name)."""
    if "." not in name:
        return {}
    from attnzoo.zoo.weights import get_weights

    return dict(get_weights(name).kwargs)
