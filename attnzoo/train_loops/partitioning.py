"""Device mesh, logical-axis rules and shardings for params and batches.

Mesh axes are `data`, `fsdp` and `model`; the batch is split over `data x fsdp`. Params
carry logical axis names (`nnx.with_partitioning`), which `config.mesh.rules` map to mesh
axes. A dimension a mesh axis does not divide is replicated instead of failing.
"""

import math
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

BATCH_AXES = ("data", "fsdp")

# Every logical name a layer uses must appear here (unlisted names would be taken as mesh
# axes). `None` = replicated.
DEFAULT_RULES = (
    ("batch", BATCH_AXES),
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv", None),
    ("vocab", "model"),
    ("classes", None),
    ("patch", None),
    ("length", None),
)


def make_mesh(mesh_config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    """Mesh from `shape` (one entry may be -1: all remaining devices) and `axes`."""
    shape, axes = list(mesh_config.shape), tuple(mesh_config.axes)
    if len(shape) != len(axes):
        raise ValueError(f"mesh.shape {tuple(shape)} and mesh.axes {axes} differ in length")
    n = jax.device_count()
    if shape.count(-1) > 1:
        raise ValueError(f"mesh.shape {tuple(shape)} may hold at most one -1")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if n % known:
            raise ValueError(f"mesh.shape {tuple(shape)} does not divide {n} devices")
        shape[shape.index(-1)] = n // known
    size = math.prod(shape)
    if size > n or (size < n and jax.process_count() > 1):
        raise ValueError(f"mesh.shape {tuple(shape)} needs {size} devices, have {n}")
    # A smaller mesh (single process only) uses the first devices, e.g. (1, 1, 1) = one device.
    # jax 0.10 defaults to Explicit axes, which logical-rule sharding does not support.
    return jax.make_mesh(
        tuple(shape), axes, axis_types=(AxisType.Auto,) * len(axes), devices=jax.devices()[:size]
    )


def logical_rules(mesh_config: ml_collections.ConfigDict) -> tuple:
    """The config's rules, each as `(logical_name, mesh_axes or None)`."""
    return tuple(
        (name, tuple(axes) if isinstance(axes, list) else axes)
        for name, axes in mesh_config.get("rules", DEFAULT_RULES)
    )


def _axis_size(mesh: jax.sharding.Mesh, axes) -> int:
    if axes is None:
        return 1
    names = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in names)


def _fit(spec: P, shape: Sequence[int], mesh: jax.sharding.Mesh) -> P:
    """Replicates each dimension of `spec` that its mesh axes do not divide."""
    entries = list(spec) + [None] * (len(shape) - len(spec))
    return P(*(a if d % _axis_size(mesh, a) == 0 else None for a, d in zip(entries, shape)))


def state_shardings(abstract_state: nnx.State, mesh: jax.sharding.Mesh) -> nnx.State:
    """NamedShardings for an (abstract) NNX state; call inside `nnx.logical_axis_rules`."""
    specs = nnx.get_partition_spec(abstract_state)

    def to_sharding(spec, leaf):
        spec = spec if isinstance(spec, P) else P()
        return NamedSharding(mesh, _fit(spec, np.shape(leaf), mesh))

    return jax.tree.map(
        to_sharding, specs, abstract_state, is_leaf=lambda x: isinstance(x, P) or x is None
    )


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data x fsdp`, the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES))


def global_batch(local_batch: dict, mesh: jax.sharding.Mesh) -> dict:
    """Assembles each process's local numpy batch into one global, sharded jax array."""
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def check_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> None:
    ways = _axis_size(mesh, BATCH_AXES)
    if batch_size % ways or batch_size % jax.process_count():
        raise ValueError(
            f"batch size {batch_size} must divide over the {ways} data x fsdp "
            f"shards and {jax.process_count()} processes"
        )
