"""Transformer feed-forward blocks."""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.activations import gelu_exact, gelu_tanh
from attnzoo.layers.dropout import Dropout
from attnzoo.layers.linear import Linear

_ACTIVATIONS = {
    "gelu": gelu_tanh,
    "gelu_exact": gelu_exact,
    "relu": nnx.relu,
    "silu": nnx.silu,
}


def dense(
    in_features: int,
    out_features: int,
    axes: tuple[str | None, str | None],
    *,
    use_bias: bool = True,
    kernel_init=nnx.initializers.xavier_uniform(),
    bias_init=nnx.initializers.zeros_init(),
    dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> Linear:
    """A :class:`~attnzoo.layers.linear.Linear` (an `nnx.Linear`) whose kernel is partitioned
    by `axes` and bias by `axes[1]`."""
    return Linear(
        in_features,
        out_features,
        use_bias=use_bias,
        dtype=dtype,
        kernel_init=nnx.with_partitioning(kernel_init, axes),
        bias_init=nnx.with_partitioning(bias_init, (axes[1],)),
        rngs=rngs,
    )


class Mlp(nnx.Module):
    """`fc2(act(fc1(x)))`, x `[..., embed]` -> `[..., out]`; hidden dim on the `"mlp"` axis."""

    def __init__(
        self,
        features: int,
        hidden: int,
        *,
        out_features: int | None = None,
        activation: str = "gelu",
        dropout: float = 0.0,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}"
            )
        self.activation = activation
        tiny = nnx.initializers.normal(1e-6)  # big_vision's MLP bias init
        self.fc1 = dense(features, hidden, ("embed", "mlp"), bias_init=tiny, dtype=dtype, rngs=rngs)
        self.fc2 = dense(
            hidden,
            out_features or features,
            ("mlp", "embed"),
            bias_init=tiny,
            dtype=dtype,
            rngs=rngs,
        )
        self.dropout = Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """`rngs`: the step's streams for dropout (default: the layer's own stream)."""
        h = _ACTIVATIONS[self.activation](self.fc1(x))  # [..., mlp]
        return self.fc2(self.dropout(h, rngs=rngs))


def torch_dense(
    in_features: int,
    out_features: int,
    axes: tuple[str | None, str | None] = (None, None),
    *,
    use_bias: bool = True,
    rngs: nnx.Rngs,
) -> Linear:
    """`dense` initialised like PyTorch's `nn.Linear`: kernel and bias uniform in
    ±1/sqrt(in_features) (for faithful ports of PyTorch models)."""
    bound = in_features**-0.5
    return dense(
        in_features,
        out_features,
        axes,
        use_bias=use_bias,
        kernel_init=nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
        bias_init=lambda key, shape, dtype=jnp.float32: jax.random.uniform(
            key, shape, dtype, -bound, bound
        ),
        rngs=rngs,
    )
