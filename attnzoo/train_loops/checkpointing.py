"""Orbax checkpoints of a training run: `WORKDIR/checkpoints/<step>/{state,data,meta}`.

`state` is the pure-dict NNX state (model, optimizer, RNG; typed PRNG keys stored as raw
key data), `data` the training iterator position (JSON), `meta` the step and the config.
Orbax writes each step to a temporary directory and renames it when complete, so a killed
run never leaves a half-written checkpoint behind.
"""

import contextlib
import os

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint._src.metadata import array_metadata_store

from attnzoo.zoo.pretrained import step_dirs

_KEY_PREFIX = "__prng_key__"


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def keys_to_data(tree):
    """Replaces typed PRNG keys by their uint32 key data (orbax stores plain arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def data_to_keys(tree, like):
    """Inverse of `keys_to_data` (default PRNG impl), guided by the key leaves of `like`."""
    return jax.tree.map(
        lambda x, ref: jax.random.wrap_key_data(x) if _is_key(ref) else x, tree, like
    )


def abstract_key_data(abstract_tree):
    """Abstract (ShapeDtypeStruct) tree matching `keys_to_data` of a concrete tree."""

    def convert(x):
        if not _is_key(x):
            return x
        data = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=getattr(x, "sharding", None))

    return jax.tree.map(convert, abstract_tree)


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def latest_meta(workdir: str) -> tuple[int, dict] | None:
    """`(step, meta)` of the latest finished checkpoint in `workdir`, or None; reads only
    (creates nothing, unlike `Checkpointer`)."""
    steps = step_dirs(checkpoint_dir(workdir))
    if not steps:
        return None
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as reader:
        meta = reader.restore(os.path.join(steps[-1], "meta"))
    return int(os.path.basename(steps[-1])), meta


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, failing writes); earlier ones are kept."""


def _state_handler() -> ocp.PyTreeCheckpointHandler:
    """Orbax's pytree handler, with replica-parallel saving off on CPU: it slices every
    replicated array per device with an op compiled per shape (seconds at a run's first save
    on 8 CPU devices) to spread writes that on CPU share one host and one disk anyway."""
    arrays = ocp.type_handlers.ArrayHandler(
        use_replica_parallel=jax.default_backend() != "cpu",
        array_metadata_store=array_metadata_store.Store(),
    )
    others = [t for t in ocp.type_handlers.supported_types() if t is not jax.Array]
    registry = ocp.type_handlers.create_type_handler_registry(
        (jax.Array, arrays), *[(t, ocp.type_handlers.get_type_handler(t)) for t in others]
    )
    return ocp.PyTreeCheckpointHandler(type_handler_registry=registry)


class Checkpointer:
    """Saves every `every` steps keeping the last `keep`; restores the latest. A failed
    write (found at the save or when it finishes) raises `CheckpointWriteError`."""

    def __init__(self, workdir: str, *, every: int, keep: int):
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(every, 1),
            max_to_keep=keep,
            create=True,
            cleanup_tmp_directories=True,  # drop what a killed run left half-written
        )
        self.directory = checkpoint_dir(workdir)
        registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
        state_handler = _state_handler()
        registry.add("state", ocp.args.PyTreeSave, state_handler)
        registry.add("state", ocp.args.PyTreeRestore, state_handler)
        for item in ("data", "meta"):
            json_handler = ocp.JsonCheckpointHandler()
            registry.add(item, ocp.args.JsonSave, json_handler)
            registry.add(item, ocp.args.JsonRestore, json_handler)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, handler_registry=registry
        )
        self._writing: int | None = None  # step of the save in flight

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: dict, data_state: dict, meta: dict, *, force=False) -> bool:
        self.wait()
        self._writing = step
        with self._reporting_write_errors():
            return self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeSave(keys_to_data(state)),
                    data=ocp.args.JsonSave(data_state),
                    meta=ocp.args.JsonSave(meta),
                ),
                force=force,
            )

    def restore(self, step: int, abstract_state: dict) -> tuple[dict, dict, dict]:
        """Restores `(state, data_state, meta)`; `abstract_state` carries target shardings."""
        abstract = abstract_key_data(abstract_state)
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(abstract, restore_args=restore_args),
                data=ocp.args.JsonRestore(),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return data_to_keys(restored.state, abstract_state), restored.data, restored.meta

    def wait(self) -> None:
        """Blocks until the save in flight is on disk."""
        with self._reporting_write_errors():
            self.manager.wait_until_finished()
        self._writing = None

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.manager.close()

    @contextlib.contextmanager
    def _reporting_write_errors(self):
        try:
            yield
        except Exception as e:
            step, self._writing = self._writing, None
            done = step_dirs(self.directory)
            kept = f"step {os.path.basename(done[-1])}" if done else "none"
            cause = " ".join(str(e).split())[:300]
            raise CheckpointWriteError(
                f"could not write checkpoint {step} in {self.directory} ({cause}); "
                f"the last complete checkpoint is kept: {kept}"
            ) from None
