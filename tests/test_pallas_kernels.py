"""Pallas block-sparse flash attention (interpret mode on CPU) vs the dense reference.

Each case runs the forward and the backward (dq, dk, dv) of one backend's kernels on a tiny
shape and compares them with ``attend(impl="reference")``, which materialises the mask and
does not use block lists, so a missing tile or a wrong in-tile mask shows. Tolerances: f32
2e-5 absolute; bf16 3e-2 (inputs rounded to bf16 for both sides; outputs in bf16).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.pallas.mosaic.interpret import interpret_pallas_call as tpu_interpreter
from jax.experimental.pallas import tpu as pltpu

from attnzoo.layers.attention import attend
from attnzoo.layers.masks import (
    BlockSparse,
    Causal,
    Dense,
    LocalWindow1D,
    LocalWindow2D,
    Segments,
)
from attnzoo.pallas_kernels import BlockLists, choose_blocks, flash_attention, reference

TPU_INTERPRET = pltpu.InterpretParams(detect_races=True, out_of_bounds_reads="raise")


def normal(shape, seed, dtype=jnp.float32):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


@functools.partial(jax.jit, static_argnames=("backend", "block", "scale"))
def kernel_vjp(q, k, v, mask, cot, *, backend, block, scale):
    t, s = q.shape[1], k.shape[1]
    pw = mask.pointwise()
    interpret = TPU_INTERPRET if backend == "tpu" else True

    def f(q, k, v):
        return flash_attention(
            q, k, v,
            fn=pw.fn, operands=pw.operands, lists=mask.tile_lists(t, s, block, block),
            scale=scale, block_q=block, block_k=block, backend=backend, interpret=interpret,
        )  # fmt: skip

    out, vjp = jax.vjp(f, q, k, v)
    return out, vjp(cot)


@functools.partial(jax.jit, static_argnames=("scale",))
def reference_vjp(q, k, v, mask, cot, *, scale):
    f = lambda q, k, v: attend(q, k, v, mask=mask, scale=scale, impl="reference")  # noqa: E731
    out, vjp = jax.vjp(f, q, k, v)
    return out, vjp(cot)


def check(backend, mask, *, b=1, t=40, s=40, hq=2, hkv=1, d=32, dv=32, dtype=jnp.float32,
          block=16, empty_rows=()):  # fmt: skip
    q, k = normal((b, t, hq, d), 0, dtype), normal((b, s, hkv, d), 1, dtype)
    v = normal((b, s, hkv, dv), 2, dtype)
    cot = normal((b, t, hq, dv), 3, dtype)
    scale = 0.7 / d**0.5
    out, grads = kernel_vjp(q, k, v, mask, cot, backend=backend, block=block, scale=scale)
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    want, want_grads = reference_vjp(f32(q), f32(k), f32(v), mask, f32(cot), scale=scale)
    atol = 2e-5 if dtype == jnp.float32 else 3e-2
    assert out.dtype == dtype and all(g.dtype == dtype for g in grads)
    np.testing.assert_allclose(f32(out), want, atol=atol, rtol=atol)
    for name, g, w in zip("qkv", grads, want_grads, strict=True):
        scale_g = max(1.0, float(jnp.abs(w).max()))
        np.testing.assert_allclose(f32(g), w, atol=atol * scale_g, err_msg=f"d{name}")
    if empty_rows:
        np.testing.assert_array_equal(out[:, list(empty_rows)], 0)
        np.testing.assert_array_equal(grads[0][:, list(empty_rows)], 0)


# ----------------------------------------------------------------------------- GPU (Triton)


def _ids(b, t, seed):
    return jnp.asarray(np.sort(np.random.default_rng(seed).integers(0, 3, (b, t)), axis=1))


GPU_CASES = {
    "causal_traced_offset_gqa": dict(mask=Causal(jnp.int32(5)), t=40, s=48, hq=4, hkv=2),
    "local1d_odd_len_odd_dims": dict(mask=LocalWindow1D(7, 3), t=37, s=37, hkv=2, d=48, dv=40),
    "local2d_window_first": dict(mask=LocalWindow2D((8, 8), 1, window=(4, 4)), t=64, s=64),
    "block_sparse_per_batch_head_mqa": dict(
        mask=BlockSparse(16, 16, jnp.array([[[[0, 2], [1, -1]], [[2, 2], [0, 1]]]] * 2)),
        b=2,
        t=32,
        s=48,
        hq=2,
        hkv=1,
    ),  # fmt: skip
    "segments_and_causal_empty_rows": dict(
        mask=Segments(_ids(1, 40, 0)) & Causal(-3), empty_rows=(0, 1, 2)
    ),
    "dense_empty_rows": dict(
        mask=Dense(jnp.asarray(np.random.default_rng(5).random((40, 40)) < 0.2).at[7].set(False)),
        empty_rows=(7,),
    ),
    "causal_window_bf16": dict(
        mask=Causal() & LocalWindow1D(16, 0), dtype=jnp.bfloat16, t=64, s=64, hq=4, hkv=2, d=64
    ),
}


@pytest.mark.parametrize("name", list(GPU_CASES))
def test_gpu_kernels_match_reference(name):
    check("gpu", **GPU_CASES[name])


# ----------------------------------------------------------------------------- TPU (Mosaic)


TPU_CASES = {
    "block_sparse_per_head_and_causal_gqa": dict(
        mask=BlockSparse(16, 16, jnp.array([[[[1, 0], [2, -1]], [[0, -1], [0, 1]]]])) & Causal(),
        t=32,
        s=48,
        hq=2,
        hkv=1,
    ),  # fmt: skip
    "segments_and_causal_empty_rows": dict(
        mask=Segments(_ids(1, 40, 0)) & Causal(-3), empty_rows=(0, 1, 2), d=40
    ),
    "local2d_row_major_bf16": dict(mask=LocalWindow2D((6, 8), 1), t=48, s=48, dtype=jnp.bfloat16),
}


@pytest.mark.parametrize("name", list(TPU_CASES))
def test_tpu_kernels_match_reference(name):
    check("tpu", block=16, **TPU_CASES[name])
    # jax records races in the interpreter's state (no public accessor in 0.10.2)
    assert tpu_interpreter.races is not None and not tpu_interpreter.races.races_found


# ----------------------------------------------------------------------------- pieces


def test_reference_oracle_matches_attend():
    mask = Segments(_ids(1, 24, 1)) & LocalWindow1D(5, 2)
    q, k, v = normal((1, 24, 2, 8), 0), normal((1, 24, 1, 8), 1), normal((1, 24, 1, 8), 2)
    pw = mask.pointwise()
    got = reference.flash_attention(
        q, k, v, fn=pw.fn, operands=pw.operands, lists=mask.tile_lists(24, 24, 8, 8),
        scale=0.5, block_q=8, block_k=8,
    )  # fmt: skip
    want = attend(q, k, v, mask=mask, scale=0.5, impl="reference")
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_transposed_lists():
    lists = BlockLists(
        jnp.array([[[[0, 2], [1, -1], [-1, -1]]]], jnp.int32), jnp.array([[[2, 1, 0]]], jnp.int32)
    )
    lt = lists.transpose(nk=4)  # key block -> query blocks using it
    np.testing.assert_array_equal(lt.counts[0, 0], [1, 1, 1, 0])
    np.testing.assert_array_equal(lt.indices[0, 0], [[0], [1], [0], [-1]])


def test_choose_blocks():
    assert choose_blocks("gpu", 4096, 4096) == (64, 64)
    assert choose_blocks("tpu", 4096, 100) == (128, 128)
    assert choose_blocks("gpu", 20, 9) == (32, 16)
    assert choose_blocks("tpu", 4096, 4096, multiple=(64, 32)) == (64, 32)
    with pytest.raises(ValueError, match="dividing the mask's block size 24"):
        choose_blocks("gpu", 64, 64, multiple=(24, 16))
    with pytest.raises(ValueError, match="pallas kernels run on"):
        choose_blocks("cpu", 64, 64)
