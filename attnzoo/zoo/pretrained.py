"""Pretrained weights into a model: from a tag, a `.safetensors` release or a training run.

Sources: a registered tag (`vit_tiny.fmnist`, file from the cache), a `.safetensors` file
written by `attnzoo.export`/`attnzoo.convert`, a training workdir (its latest checkpoint),
its `checkpoints/` directory, or one step directory `checkpoints/<step>`. Each source
carries the model spec it was built from, so shapes need not be repeated.
"""

import dataclasses
import json
import logging
import os
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from attnzoo.layers.posemb import resample_1d, resample_2d
from attnzoo.zoo import registry
from attnzoo.zoo.release import read_release
from attnzoo.zoo.weights import get_weights, tags


@dataclasses.dataclass
class Weights:
    """Flat params `{"a/b/kernel": array}` and the spec `{"name", "kwargs"}` they fit."""

    params: dict[str, np.ndarray]
    spec: dict | None
    where: str


def step_dirs(path: str) -> list[str]:
    """The finished step directories `path/<step>`, in step order."""
    if not os.path.isdir(path):
        return []
    steps = [d for d in os.listdir(path) if d.isdigit()]
    return [os.path.join(path, d) for d in sorted(steps, key=int)]


def resolve_checkpoint(path: str) -> str:
    """The `state` directory of the checkpoint `path` designates."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(os.path.join(path, "state")):
        return os.path.join(path, "state")
    for candidate in (os.path.join(path, "checkpoints"), path):
        steps = step_dirs(candidate)
        if steps:
            return os.path.join(steps[-1], "state")
    raise FileNotFoundError(
        f"no attnzoo checkpoint found at {path} "
        "(expected a tag, a .safetensors file, a workdir, its checkpoints/ or a "
        "checkpoints/<step>)"
    )


def read_model_params(path: str) -> dict:
    """The model state of checkpoint `path` as a nested dict of host arrays; its params are
    the moving average when the run kept one (`train.ema_decay`), as evaluation and
    sampling use."""
    path = resolve_checkpoint(path)
    local = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        saved = checkpointer.metadata(path).item_metadata
        # explicit targets: a checkpoint written on another topology (N processes) restores too
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local), saved
        )
        restored = checkpointer.restore(path, target)
    return _overlay(restored["model"], restored.get("ema", {}))


def _overlay(tree: dict, top: dict) -> dict:
    """`tree` with the leaves that `top` (a sub-tree of the same paths) holds replaced."""
    return {
        k: (_overlay(v, top[k]) if isinstance(v, dict) else top[k]) if k in top else v
        for k, v in tree.items()
    }


def _checkpoint_spec(state_dir: str) -> dict | None:
    """The model spec saved next to a checkpoint's state (None for older checkpoints)."""
    meta_dir = os.path.join(os.path.dirname(state_dir), "meta")
    if not os.path.isdir(meta_dir):
        return None
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as reader:
        meta = reader.restore(meta_dir)
    return json.loads(meta["model"]) if meta.get("model") else None


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """`{"a/b/kernel": array}` of a checkpoint's model state, without its RNG streams."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if key == "rngs":
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def read_weights(source: str) -> Weights:
    """The params and spec of a tag, `.safetensors` file or training checkpoint."""
    if source in tags():
        from attnzoo.zoo.hub import cached_file

        config = get_weights(source)
        params, spec = read_release(cached_file(source, config))
        return Weights(params, spec or {"name": config.model, "kwargs": config.kwargs}, source)
    if source.endswith(".safetensors"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no weights file at {os.path.abspath(source)}")
        params, spec = read_release(source)
        return Weights(params, spec, source)
    spec = _checkpoint_spec(resolve_checkpoint(source))
    return Weights(_flatten(read_model_params(source)), spec, source)


def resolve(name: str, pretrained: bool | str | None) -> tuple[str, str | None]:
    """`(architecture, weights source or None)` of `create_model(name, pretrained=...)`."""
    arch, dot, _ = name.partition(".")
    if dot:
        get_weights(name)  # a clear error for an unknown tag
    registry.get_architecture(arch)
    if pretrained is True:
        if not dot:
            known = registry.list_models(f"{arch}.*", pretrained=True)
            raise ValueError(
                f"pretrained=True needs a tag ARCH.WEIGHTS; tags of {arch}: "
                f"{', '.join(known) or 'none'} (or pass a checkpoint path)"
            )
        return arch, name
    if isinstance(pretrained, str):
        return arch, pretrained
    if pretrained not in (None, False):
        raise ValueError(f"pretrained must be True, a tag or a path, not {pretrained!r}")
    return arch, None


def _source_grid(weights: Weights, n: int) -> tuple[int, int]:
    """The token grid of the source's 2-D position table of `n` rows."""
    if weights.spec is not None:
        spec = weights.spec
        abstract = nnx.eval_shape(lambda: registry.build(spec["name"], spec["kwargs"]))
        if hasattr(abstract, "grid"):
            return tuple(abstract.grid)
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(f"{weights.where}: cannot tell the grid of a {n}-token position table")
    return side, side


def submodule(model: nnx.Module, into: str) -> nnx.Module:
    """The submodule of `model` at path `into` ("backbone", "a/b"; "" = `model` itself)."""
    for part in into.split("/") if into else ():
        if not isinstance(getattr(model, part, None), nnx.Module):
            raise ValueError(f"init_from.into={into!r}: the model has no submodule {part!r}")
        model = getattr(model, part)
    return model


def load_pretrained(
    model: nnx.Module, source: "str | Weights", *, skip: Sequence[str] = (), into: str = ""
) -> dict:
    """Copies params (and BatchNorm statistics) of `source` into `model` in place; with
    `into` ("backbone", "a/b"), into that submodule of `model` (e.g. a zoo ViT checkpoint
    into the gaze model's ViT backbone; its paths are then relative to the submodule).

    Learned position embeddings whose shape differs are resampled (2-D bilinear over the
    token grid, 1-D linear over the sequence). A param is kept at its fresh initialisation
    when its '/'-joined path matches a regex in `skip`, when the source lacks it, or when
    its shape differs (a classifier for another `num_classes` is reported as `reset`).
    Returns `{"loaded", "resampled", "reset", "kept"}` lists of paths.
    """
    weights = source if isinstance(source, Weights) else read_weights(source)
    model = submodule(model, into)
    spec = registry.model_spec(model) or (weights.spec if into else None)
    arch = registry.get_architecture(spec["name"]) if spec else registry.Architecture(None)
    params = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    report = {"loaded": [], "resampled": [], "reset": [], "kept": []}

    def take(key_path, value):
        name = "/".join(str(getattr(k, "key", k)) for k in key_path)
        ckpt = weights.params.get(name)
        kind = next((k for pattern, k in arch.posemb if re.search(pattern, name)), None)
        if any(re.search(p, name) for p in skip) or ckpt is None:
            report["kept"].append(name)
            return value
        if ckpt.shape != value.shape and kind == "2d":
            ckpt = resample_2d(ckpt, _source_grid(weights, ckpt.shape[0]), tuple(model.grid))
            report["resampled"].append(name)
        elif ckpt.shape != value.shape and kind == "1d" and ckpt.shape[1:] == value.shape[1:]:
            ckpt = resample_1d(ckpt, value.shape[0])
            report["resampled"].append(name)
        elif ckpt.shape != value.shape:
            classifier = arch.classifier and re.search(arch.classifier, name)
            report["reset" if classifier else "kept"].append(name)
            return value
        else:
            report["loaded"].append(name)
        return jax.device_put(jnp.asarray(ckpt, value.dtype), value.sharding)

    pure = nnx.to_pure_dict(params)
    new = jax.tree_util.tree_map_with_path(take, pure)
    if not report["loaded"]:
        raise ValueError(
            f"no parameter of {weights.where} fits this model (names or shapes differ "
            "everywhere): is it a checkpoint of this architecture?"
        )
    nnx.replace_by_pure_dict(params, new)
    nnx.update(model, params)
    if report["kept"] or report["reset"]:
        logging.info(
            "pretrained %s: fresh init for %s", weights.where, report["kept"] + report["reset"]
        )
    return report
