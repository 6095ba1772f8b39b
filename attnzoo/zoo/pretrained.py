"""Load params from a checkpoint written by `attnzoo.train` into a model.

Accepted paths: a training workdir (its latest checkpoint), its `checkpoints/` directory,
or one step directory `checkpoints/<step>`.
"""

import logging
import os
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from flax import nnx


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
        "(expected a workdir, its checkpoints/ or a checkpoints/<step>)"
    )


def read_model_params(path: str) -> dict:
    """The model params of checkpoint `path` as a nested dict of host arrays."""
    path = resolve_checkpoint(path)
    local = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.StandardCheckpointer() as checkpointer:
        saved = checkpointer.metadata(path).item_metadata
        # explicit targets: a checkpoint written on another topology (N processes) restores too
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local), saved
        )
        restored = checkpointer.restore(path, target)
    return restored["model"]


def _flatten(tree: dict, prefix=()) -> dict[tuple, object]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, prefix + (str(key),)))
        else:
            out[prefix + (str(key),)] = value
    return out


def load_pretrained(model: nnx.Module, path: str, *, skip: Sequence[str] = ()) -> dict:
    """Copies checkpoint params (and BatchNorm running statistics) into `model` in place.

    A param is kept at its fresh initialisation when its '/'-joined path matches a regex in
    `skip`, when the checkpoint lacks it, or when its shape differs (e.g. a new
    classification head). Returns `{"loaded": [...], "kept": [...]}` of '/'-joined paths.
    """
    source = _flatten(read_model_params(path))
    params = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    pure = nnx.to_pure_dict(params)
    loaded, kept = [], []

    def take(key_path, value):
        name = "/".join(str(getattr(k, "key", k)) for k in key_path)
        ckpt = source.get(tuple(name.split("/")))
        if any(re.search(p, name) for p in skip) or ckpt is None or ckpt.shape != value.shape:
            kept.append(name)
            return value
        loaded.append(name)
        return jax.device_put(jnp.asarray(ckpt, value.dtype), value.sharding)

    new = jax.tree_util.tree_map_with_path(take, pure)
    if not loaded:
        raise ValueError(
            f"no parameter of the checkpoint at {path} fits this model (names or shapes "
            "differ everywhere): is it a checkpoint of this architecture?"
        )
    nnx.replace_by_pure_dict(params, new)
    nnx.update(model, params)
    if kept:
        logging.info("pretrained %s: kept fresh init for %s", path, ", ".join(kept))
    return {"loaded": loaded, "kept": kept}
