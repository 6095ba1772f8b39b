"""Reading official checkpoints and mapping their tensors by name, strictly.

`read_state_dict` opens `.safetensors`, `.npz` and `torch.save` files (`.pt`/`.pth`/`.bin`)
with numpy only. A family's `convert.py` registers a converter per architecture prefix;
`StateDict.take` hands out each tensor once with its shape checked, and `StateDict.finish`
refuses leftovers.
"""

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from attnzoo.zoo.torch_checkpoint import load_torch_file

_CONVERTERS: dict[str, Callable] = {}


def register_converter(*prefixes: str):
    """Decorator: `fn(arch, StateDict) -> (kwargs, params)` converts official checkpoints of
    the architectures whose names start with one of `prefixes`."""

    def wrap(fn):
        for prefix in prefixes:
            _CONVERTERS[prefix] = fn
        return fn

    return wrap


def get_converter(arch: str) -> Callable:
    for prefix, fn in _CONVERTERS.items():
        if arch.startswith(prefix):
            return fn
    raise ValueError(
        f"no converter for {arch!r}; converters exist for: {', '.join(sorted(_CONVERTERS))}"
    )


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """`{name: array}` of an official checkpoint file (the `ema`, else `model`/`state_dict`
    entry of a training checkpoint)."""
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        return load_file(path)
    if path.endswith(".npz"):
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    if path.endswith((".pt", ".pth", ".bin")):
        state = load_torch_file(path)
        for key in ("ema", "model", "state_dict", "model_state_dict"):  # EMA weights first
            if isinstance(state.get(key), dict):
                state = state[key]
        return {
            k: v.astype(np.float32) if jnp.issubdtype(v.dtype, jnp.floating) else v
            for k, v in state.items()
        }
    raise ValueError(f"unknown checkpoint format {path!r}: use .safetensors, .npz, .pt or .pth")


class StateDict:
    """Official tensors handed out once each, shapes checked (`ValueError` otherwise)."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self._tensors = {k: np.asarray(v) for k, v in tensors.items()}
        self._taken: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self._tensors

    def shape(self, key: str) -> tuple[int, ...]:
        self._require(key)
        return self._tensors[key].shape

    def take(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        self._require(key)
        value = self._tensors[key]
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise ValueError(f"official tensor {key} has shape {value.shape}, expected {shape}")
        self._taken.add(key)
        return value.astype(np.float32) if value.dtype.kind == "f" else value

    def count(self, prefix: str) -> int:
        """Number of consecutive `prefix{i}.` groups (blocks.0., blocks.1., ...)."""
        n = 0
        while any(
            k.startswith(f"{prefix}{n}.") or k.startswith(f"{prefix}{n}/") for k in self._tensors
        ):
            n += 1
        return n

    def finish(self) -> None:
        """Refuses tensors no mapping took (an architecture the converter does not cover)."""
        left = sorted(set(self._tensors) - self._taken)
        if left:
            shown = ", ".join(left[:8]) + (f" (+{len(left) - 8} more)" if len(left) > 8 else "")
            raise ValueError(f"{len(left)} official tensors have no place in this model: {shown}")

    def _require(self, key: str) -> None:
        if key not in self._tensors:
            raise ValueError(f"official checkpoint lacks {key} (another architecture or variant?)")


def torch_linear(
    sd: "StateDict", key: str, out_dim: int, in_dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch `nn.Linear` `key` -> (kernel `[in, out]`, bias `[out]`)."""
    return sd.take(f"{key}.weight", (out_dim, in_dim)).T, sd.take(f"{key}.bias", (out_dim,))


def timm_attention(sd: "StateDict", key: str, width: int, num_heads: int) -> dict:
    """timm-style `Attention` `key` (fused `qkv` `[3D, D]`, rows ordered (q|k|v, head,
    head_dim); `proj`) -> `MultiHeadAttention` params `{query,key,value,out}/{kernel,bias}`."""
    hd = width // num_heads
    qkv = sd.take(f"{key}.qkv.weight", (3 * width, width)).reshape(3, num_heads, hd, width)
    qkv_bias = sd.take(f"{key}.qkv.bias", (3 * width,)).reshape(3, num_heads, hd)
    params = {}
    for j, name in enumerate(("query", "key", "value")):
        params[f"{name}/kernel"] = qkv[j].transpose(2, 0, 1)  # [D, h, d]
        params[f"{name}/bias"] = qkv_bias[j]
    kernel, params["out/bias"] = torch_linear(sd, f"{key}.proj", width, width)
    params["out/kernel"] = kernel.reshape(num_heads, hd, width)
    return params


def patch_conv(sd: "StateDict", key: str) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch patch-embedding `Conv2d` `key` `[D, C, p, p]` (stride p) -> (kernel
    `[p*p*C, D]` over (row, column, channel) patches, bias `[D]`)."""
    width, c, p, _ = sd.shape(f"{key}.weight")
    kernel = sd.take(f"{key}.weight").transpose(2, 3, 1, 0).reshape(p * p * c, width)
    return kernel, sd.take(f"{key}.bias", (width,))


def check_fits(params: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]]) -> None:
    """Converted `params` must cover exactly the model's params (`expected` shapes)."""
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    wrong = [k for k in set(params) & set(expected) if tuple(params[k].shape) != expected[k]]
    if missing or extra or wrong:
        raise ValueError(
            f"converted params do not fit the model: missing {missing[:5]}, "
            f"unexpected {extra[:5]}, wrong shapes {sorted(wrong)[:5]}"
        )
