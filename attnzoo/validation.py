"""Up-front checks of a run's config and workdir, before anything is written.

Each problem is one `ConfigError` naming the field, its value and what would be valid;
the CLI prints it as one line and exits with code 2.
"""

import json
import math
import os

import jax
import ml_collections
from flax import nnx

from attnzoo import data
from attnzoo.configs import ConfigError
from attnzoo.train_loops import partitioning
from attnzoo.train_loops.checkpointing import checkpoint_dir, latest_meta
from attnzoo.train_loops.family import family_names, get_family
from attnzoo.train_loops.optimizers import OPTIMIZERS, SCHEDULES
from attnzoo.zoo.registry import list_models

POSITIVE = (
    "train.steps",
    "train.batch_size",
    "train.eval_batch_size",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
)
NON_NEGATIVE = (
    "train.eval_every",
    "schedule.warmup_steps",
    "optimizer.weight_decay",
    "optimizer.clip_norm",
)
# Model fields that change how a model runs, not what its checkpoint holds.
RUNTIME_MODEL_FIELDS = ("attention_impl", "record_weights")


def _get(config: ml_collections.ConfigDict, key: str):
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, ml_collections.ConfigDict) else None
    return node


def _choice(config, key: str, valid) -> None:
    value = _get(config, key)
    if value not in valid:
        raise ConfigError(
            f"--config.{key}={value!r} is not valid; choose one of {', '.join(valid)}"
        )


def _counts(config) -> None:
    for key in POSITIVE + NON_NEGATIVE:
        value = _get(config, key)
        if value is None and key in NON_NEGATIVE:
            continue
        low = 1 if key in POSITIVE else 0
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise ConfigError(
                f"--config.{key}={value!r} is not valid; it must be a number >= {low}"
            )
    lr = _get(config, "optimizer.learning_rate")
    if (
        isinstance(lr, bool)
        or not isinstance(lr, int | float)
        or not (math.isfinite(lr) and lr > 0)
    ):
        raise ConfigError(f"--config.optimizer.learning_rate={lr!r} is not valid; it must be > 0")
    smoothing = config.train.get("label_smoothing", 0.0)
    if not 0 <= smoothing < 1:
        raise ConfigError(f"--config.train.label_smoothing={smoothing!r} must be in [0, 1)")


def _splits(config) -> None:
    keys = ["data.train_split", "data.eval_split"]
    if _get(config, "select.split"):
        keys.append("select.split")
    for key in keys:
        try:
            n = data.num_examples(config.data.name, _get(config, key))
        except ValueError as e:
            raise ConfigError(f"--config.{key}={_get(config, key)!r}: {e}") from None
        if n == 0:
            raise ConfigError(f"--config.{key}={_get(config, key)!r} selects no examples")


def _selection(config) -> None:
    select = config.get("select") or {}
    if select.get("split"):
        _choice(config, "select.mode", ("min", "max"))
        patience = select.get("patience", 0)
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ConfigError(f"--config.select.patience={patience!r} must be an int >= 0")


def _mesh(config) -> None:
    try:
        mesh = partitioning.make_mesh(config.mesh)
    except ValueError as e:
        raise ConfigError(
            f"--config.mesh.shape={tuple(config.mesh.shape)} is not valid "
            f"for {jax.device_count()} devices: {e}"
        ) from None
    for key in ("train.batch_size", "train.eval_batch_size"):
        try:
            partitioning.check_batch_size(_get(config, key), mesh)
        except ValueError as e:
            raise ConfigError(f"--config.{key}={_get(config, key)} is not valid: {e}") from None


def _model(config) -> nnx.Module:
    """The model's abstract (shape-only) instance: it builds from these settings."""
    try:
        family = get_family(config)  # a family checks its own fields here
    except ValueError as e:
        raise ConfigError(f"--config.{e}") from None
    try:
        with nnx.use_eager_sharding(False):
            return nnx.eval_shape(lambda: family.build_model(rngs=nnx.Rngs(0)))
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"--config.model ({config.model.name}) cannot be built: {' '.join(str(e).split())}"
        ) from None


def _init_from(config, model: nnx.Module) -> None:
    """`init_from.path`: a pretrained tag (its file cached or fetchable), a `.safetensors`
    release or a run's checkpoint directory; `init_from.into`: a submodule of `model`."""
    from attnzoo.zoo.hub import cache_dir
    from attnzoo.zoo.pretrained import submodule
    from attnzoo.zoo.registry import model_spec
    from attnzoo.zoo.weights import get_weights

    path = config.get("init_from", {}).get("path", "")
    into = config.get("init_from", {}).get("into", "")
    if into and not path:
        raise ConfigError(f"init_from.into={into!r} needs init_from.path (what to load)")
    try:
        target = model_spec(submodule(model, into))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not path:
        return
    tags = list_models(pretrained=True)
    if path in tags:
        weights = get_weights(path)
        if target is not None and target["name"] != weights.model:
            where = f"init_from.into={into!r} is a" if into else "--config.model is"
            raise ConfigError(
                f"init_from.path={path} holds {weights.model} weights; {where} {target['name']}"
            )
        cached = os.path.join(cache_dir(), path, weights.filename)
        if not weights.source and not os.path.exists(cached):
            raise ConfigError(
                f"init_from.path={path}: weights not found: put {weights.filename} at {cached}"
            )
    elif not os.path.exists(os.path.expanduser(path)):
        raise ConfigError(
            f"init_from.path={path!r} is neither a pretrained tag ({', '.join(tags) or 'none'}) "
            "nor an existing .safetensors file or run directory"
        )


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises `ConfigError` for the first problem; needs jax (and its devices) initialised."""
    _choice(config, "family", family_names())
    _choice(config, "model.name", list_models())
    _choice(config, "data.name", data.list_datasets())
    _choice(config, "optimizer.name", OPTIMIZERS)
    _choice(config, "schedule.name", SCHEDULES)
    _counts(config)
    _selection(config)
    _splits(config)
    _mesh(config)
    _init_from(config, _model(config))


def identity(config: ml_collections.ConfigDict) -> dict:
    """The fields a checkpoint must agree on to resume: family, dataset and model."""
    model = {k: v for k, v in config.model.to_dict().items() if k not in RUNTIME_MODEL_FIELDS}
    return {
        "family": config.family,
        "data.name": config.data.name,
        **{f"model.{k}": v for k, v in model.items()},
    }


def _normalise(value):
    """Nested tuples as lists, as the checkpoint's JSON config holds them."""
    return json.loads(json.dumps(value))


def check_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Refuses a workdir whose latest checkpoint was trained with a different model,
    family or dataset (restoring it would fail or silently mix runs)."""
    found = latest_meta(workdir)
    if found is None:
        return
    step, meta = found
    saved = identity(ml_collections.ConfigDict(json.loads(meta["config"])))
    wanted = identity(config)
    diffs = [
        f"{key} {saved.get(key)!r} -> {wanted.get(key)!r}"
        for key in sorted(set(saved) | set(wanted))
        if _normalise(saved.get(key)) != _normalise(wanted.get(key))
    ]
    if diffs:
        raise ConfigError(
            f"{checkpoint_dir(workdir)} holds step {step} of a different run "
            f"({'; '.join(diffs)}): use a new --workdir, or start from it with "
            f"--config.init_from.path={workdir}"
        )
