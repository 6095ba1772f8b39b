"""Differential attention (DIFF) and grouped differential attention (GDA): the reference path
against the definition in numpy, the fused kernels (interpret mode) against the reference,
forward and gradients including dlambda."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.pallas import tpu as pltpu

from attnzoo.layers.attention import pallas_args
from attnzoo.layers.differential import differential_attend
from attnzoo.layers.masks import Causal, LocalWindow1D, Segments
from attnzoo.pallas_kernels import differential_attention


def normal(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def inputs(b=1, t=24, s=24, h1=4, h2=2, hkv=1, d=32, dv=32):
    return (
        normal((b, t, h1, d), 0),
        normal((b, s, hkv, d), 1),
        normal((b, t, h2, d), 2),
        normal((b, s, hkv, d), 3),
        normal((b, s, hkv, dv), 4),
    )


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("h1,h2,hkv", [(2, 2, 1), (4, 2, 2), (8, 2, 1)], ids=["diff", "gqa", "gda"])
def test_reference_matches_definition(h1, h2, hkv):
    q1, k1, q2, k2, v = (np.asarray(x) for x in inputs(t=7, s=9, h1=h1, h2=h2, hkv=hkv, d=4))
    lam = np.linspace(0.2, 0.5, h1)
    got = differential_attend(q1, k1, q2, k2, v, jnp.asarray(lam), scale=0.4, impl="reference")
    want = np.zeros(got.shape)
    for i in range(h1):
        j = i // (h1 // h2)  # noise head of signal head i
        kv = j // (h2 // hkv)  # kv head of the group
        a1 = np_softmax(np.einsum("btd,bsd->bts", q1[:, :, i], k1[:, :, kv]) * 0.4)
        a2 = np_softmax(np.einsum("btd,bsd->bts", q2[:, :, j], k2[:, :, kv]) * 0.4)
        want[:, :, i] = np.einsum("bts,bsd->btd", a1 - lam[i] * a2, v[:, :, kv])
    np.testing.assert_allclose(got, want, atol=1e-5)


def _grads(f, args, cot):
    out, vjp = jax.vjp(f, *args)
    return out, vjp(cot)


@functools.partial(jax.jit, static_argnames=("backend",))
def kernel_and_reference(q1, k1, q2, k2, v, lam, mask, cot, *, backend):
    t, s = q1.shape[1], k1.shape[1]
    kw = pallas_args(mask, t, s)
    kw.update(backend=backend, interpret=pltpu.InterpretParams() if backend == "tpu" else True)

    def kernel(*args):
        return differential_attention(*args, scale=0.3, **kw)

    def reference(*args):
        return differential_attend(*args, mask=mask, scale=0.3, impl="reference")

    args = (q1, k1, q2, k2, v, lam)
    return _grads(kernel, args, cot), _grads(reference, args, cot)


CASES = {
    "gda_causal_gpu": ("gpu", dict(h1=4, h2=1, hkv=1), Causal(), 0.4),
    "diff_gqa_segments_gpu": (
        "gpu",
        dict(h1=4, h2=4, hkv=2, t=20, s=20),
        Segments(jnp.asarray(np.repeat([0, 1], 10)[None])) & LocalWindow1D(6, 2),
        jnp.array([0.2, 0.3, 0.4, 0.5]),
    ),
    "gda_causal_tpu": ("tpu", dict(h1=2, h2=1, hkv=1, t=20, s=20), Causal(-2), 0.6),
}


@pytest.mark.parametrize("name", list(CASES))
def test_fused_kernel_matches_reference(name):
    backend, shape, mask, lam = CASES[name]
    q1, k1, q2, k2, v = inputs(**shape)
    lam = jnp.asarray(lam, jnp.float32)
    cot = normal((1, q1.shape[1], q1.shape[2], v.shape[-1]), 9)
    (out, grads), (want, want_grads) = kernel_and_reference(
        q1, k1, q2, k2, v, lam, mask, cot, backend=backend
    )
    np.testing.assert_allclose(out, want, atol=2e-5)
    for name, g, w in zip(["q1", "k1", "q2", "k2", "v", "lam"], grads, want_grads, strict=True):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, atol=5e-5, rtol=1e-4, err_msg=f"d{name}")


def test_layer_pallas_on_cpu_and_errors():
    q1, k1, q2, k2, v = inputs(t=16, s=16, h1=2, h2=1)
    got = differential_attend(q1, k1, q2, k2, v, 0.5, mask=Causal(), impl="pallas")
    want = differential_attend(q1, k1, q2, k2, v, 0.5, mask=Causal(), impl="reference")
    np.testing.assert_allclose(got, want, atol=2e-5)
    with pytest.raises(ValueError, match="h1 % h2 == 0"):
        differential_attend(q1, k1, q2[:, :, :1].repeat(3, 2)[:, :, :3], k2, v, 0.5)
    with pytest.raises(ValueError, match="unknown differential attention impl"):
        differential_attend(q1, k1, q2, k2, v, 0.5, impl="cudnn")
