"""The benchmarks' FLOP count (`benchmarks/common.py: matmul_flops`) against hand counts:
loops count once per iteration (XLA's cost analysis counts a loop body once); the step's
distinct products (`step_dots`) and their einsum equations."""

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from common import einsum_equation, matmul_flops, step_dots  # noqa: E402

A, W = jnp.ones((64, 32)), jnp.ones((32, 16))
DOT = 2 * 64 * 32 * 16


def _count(fn, *args) -> float:
    return matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def test_products_forward_backward_and_remat():
    assert _count(lambda a, w: a @ w, A, W) == DOT
    grads = jax.grad(lambda a, w: jnp.tanh(a @ w).sum(), argnums=(0, 1))
    assert _count(grads, A, W) == 3 * DOT  # forward, dA, dW
    remat = jax.checkpoint(lambda a, w: jnp.tanh(a @ w))
    assert _count(jax.grad(lambda a, w: remat(a, w).sum(), argnums=(0, 1)), A, W) == 4 * DOT


def test_loops_count_every_iteration():
    assert _count(lambda a, w: jax.lax.map(lambda r: r @ w, a.reshape(4, 16, 32)), A, W) == DOT
    fori = lambda a, w: jax.lax.fori_loop(0, 5, lambda i, x: x + (a @ w).sum(), 0.0)  # noqa: E731
    assert _count(fori, A, W) == 5 * DOT
    compiled = jax.jit(fori).lower(A, W).compile().cost_analysis()["flops"]
    assert compiled < 2 * DOT  # what the benchmarks used before: one iteration


def test_convolution_and_dynamic_loops():
    x, k = jnp.ones((2, 28, 28, 1)), jnp.ones((7, 7, 1, 192))
    conv = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (7, 7), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    assert _count(conv, x, k) == 2 * (2 * 4 * 4 * 192) * (7 * 7 * 1)
    dynamic = lambda a, w, n: jax.lax.fori_loop(0, n, lambda i, x: x + (a @ w).sum(), 0.0)  # noqa: E731
    with pytest.raises(ValueError, match="no static trip count"):
        _count(dynamic, A, W, 3)


def test_step_dots_lists_each_product_with_its_count():
    loss = lambda a, w: jnp.tanh(jax.lax.map(lambda r: r @ w, a.reshape(4, 16, 32))).sum()  # noqa: E731
    dots = step_dots(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(A, W).jaxpr)
    got = sorted((lhs, rhs, p["dimension_numbers"], times) for lhs, rhs, p, times in dots)
    none = ((), ())
    assert got == [
        ((16, 16), (16, 32), (((0,), (0,)), none), 4.0),  # dW = dy^T x, per iteration
        ((16, 16), (32, 16), (((1,), (1,)), none), 4.0),  # dA = dy w^T
        ((16, 32), (32, 16), (((1,), (0,)), none), 4.0),  # forward
    ]


@pytest.mark.parametrize(
    "lhs, rhs, dims",
    [
        ((6, 4), (4, 5), (((1,), (0,)), ((), ()))),
        ((6, 4), (6, 5), (((0,), (0,)), ((), ()))),
        ((2, 3, 6, 4), (2, 3, 5, 4), (((3,), (3,)), ((0, 1), (0, 1)))),
        ((3, 6, 2, 4), (2, 4, 3, 5), (((3,), (1,)), ((2, 0), (0, 2)))),
    ],
)
def test_einsum_equation_computes_the_dot_general(lhs, rhs, dims):
    a = jax.random.normal(jax.random.key(0), lhs)
    b = jax.random.normal(jax.random.key(1), rhs)
    expected = jax.lax.dot_general(a, b, dims)
    got = jnp.einsum(einsum_equation(lhs, rhs, dims), a, b)
    assert got.shape == expected.shape
    assert jnp.allclose(got, expected, atol=1e-5)
