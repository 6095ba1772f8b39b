"""Numpy building blocks of the official models' forwards that the converter tests write
out (PyTorch conventions: `Linear` weights `[out, in]`)."""

import numpy as np
from scipy.special import erf


def linear(x, sd, key):
    """PyTorch `nn.Linear` `key` of state dict `sd` (bias optional)."""
    return x @ sd[f"{key}.weight"].T + (sd[f"{key}.bias"] if f"{key}.bias" in sd else 0)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def layer_norm(x, w=1.0, b=0.0, eps=1e-6):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_exact(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def silu(x):
    return x / (1 + np.exp(-x))
