"""Structured attention masks.

A mask says which (query, key) pairs may attend. Instead of a dense ``[T, S]`` array, each
mask is a small frozen dataclass that can

* evaluate itself at arbitrary (query, key) positions: ``allowed(q_pos, k_pos)``,
* give its pointwise form ``pointwise()`` -> :class:`Pointwise` (a function of positions and
  small per-position operands), which the xla path and every kernel evaluate inside a tile:
  one mask-evaluation path for all kinds,
* materialise itself for the reference path: ``materialize(q_len, kv_len)`` ->
  bool ``[B|1, H|1, T, S]`` (always 4-D; ``H`` counts *query* heads),
* list, per query block, the key blocks that hold at least one allowed pair:
  ``block_lists(q_len, kv_len, block_q, block_k)`` -> :class:`BlockLists` (exact), and
  ``tile_lists(...)`` (what kernels visit: the same, or a cheap superset for combinations),
  so kernels skip empty tiles. ``max_k`` (the list width) is a static Python int.
  ``BlockSparse`` is exact only at tiles dividing its blocks (``block_multiple()``);
  ``pointwise_rows(q_len)`` is exact at any tiling that keeps whole key rows (the xla
  path's chunks).

Positions are absolute: query ``i`` is row ``i`` of ``q``, key ``j`` is row ``j`` of ``k``.
``None`` means full attention everywhere in the API (see :func:`dense_mask`,
:func:`block_lists`). Masks combine with ``&`` (:class:`And`). All masks are JAX pytrees:
integer structure (window sizes, block sizes, static offsets) is static aux data, arrays are
leaves, so masks pass through ``jax.jit`` as ordinary arguments.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.pallas_kernels.block_lists import BlockLists

__all__ = [
    "And",
    "BlockLists",
    "BlockSparse",
    "Causal",
    "Dense",
    "LocalWindow1D",
    "LocalWindow2D",
    "Mask",
    "Pointwise",
    "PositionalMask",
    "Segments",
    "block_lists",
    "dense_mask",
    "tile_lists",
]


class Pointwise(NamedTuple):
    """A mask as a pointwise function, evaluated tile by tile by kernels and the xla path.

    Attributes:
      fn: ``fn(q_pos, k_pos, *values) -> bool``; ``values[i]`` is ``operands[i]`` read at the
        positions (all arguments broadcast against each other).
      operands: int32 arrays ``[B|1, H|1, T|1, S|1]`` (a size-1 axis is not indexed).
    """

    fn: Callable[..., jax.Array]
    operands: tuple[jax.Array, ...]


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _is_static_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _check_positive(**kwargs) -> None:
    for name, val in kwargs.items():
        if not _is_static_int(val) or val <= 0:
            raise ValueError(f"{name} must be a positive int, got {val!r}")


def _check_block_args(q_len, kv_len, block_q, block_k) -> None:
    _check_positive(q_len=q_len, kv_len=kv_len, block_q=block_q, block_k=block_k)


def _lists_from_block_matrix(any_blocks: jax.Array, max_k: int) -> BlockLists:
    """bool ``[B, H, nq, nk]`` -> :class:`BlockLists` of width ``max_k`` (jnp; traceable)."""
    nk = any_blocks.shape[-1]
    ids = jnp.where(any_blocks, jnp.arange(nk, dtype=jnp.int32), nk)  # [B, H, nq, nk]
    ids = jnp.sort(ids, axis=-1)[..., :max_k]
    indices = jnp.where(ids < nk, ids, -1).astype(jnp.int32)
    counts = jnp.sum(any_blocks, axis=-1, dtype=jnp.int32)
    return BlockLists(indices, counts)


def _lists_from_block_matrix_np(any_blocks: np.ndarray) -> BlockLists:
    """Static numpy ``[nq, nk]`` bool -> numpy BlockLists with the tightest ``max_k``."""
    counts = any_blocks.sum(-1).astype(np.int32)  # [nq]
    max_k = max(int(counts.max(initial=0)), 1)
    nk = any_blocks.shape[-1]
    ids = np.where(any_blocks, np.arange(nk), nk)
    ids = np.sort(ids, axis=-1)[:, :max_k]  # max_k <= nk
    indices = np.where(ids < nk, ids, -1).astype(np.int32)
    return BlockLists(indices[None, None], counts[None, None])


def _lists_from_ranges_np(first: np.ndarray, count: np.ndarray) -> BlockLists:
    """Contiguous key-block ranges ``[first, first + count)`` per query block (static)."""
    count = np.maximum(count, 0).astype(np.int32)
    max_k = max(int(count.max(initial=0)), 1)
    slot = np.arange(max_k)
    indices = np.where(slot < count[:, None], first[:, None] + slot, -1).astype(np.int32)
    return BlockLists(indices[None, None], count[None, None])


def _block_matrix_np(lists: BlockLists, nk: int) -> np.ndarray:
    """numpy BlockLists ``[1, 1, nq, k]`` -> bool ``[nq, nk]``."""
    idx = lists.indices[0, 0]
    hit = np.zeros((idx.shape[0], nk + 1), dtype=bool)
    np.put_along_axis(hit, np.where(idx >= 0, idx, nk), True, axis=1)
    return hit[:, :nk]


def _as_jnp(lists: BlockLists) -> BlockLists:
    with jax.ensure_compile_time_eval():  # stays concrete under jit: kernels size grids by it
        return BlockLists(jnp.asarray(lists.indices), jnp.asarray(lists.counts))


def _block_any(dense: jax.Array, block_q: int, block_k: int) -> jax.Array:
    """bool ``[B, H, T, S]`` -> ``[B, H, nq, nk]``: does the block hold any True."""
    b, h, t, s = dense.shape
    nq, nk = _cdiv(t, block_q), _cdiv(s, block_k)
    dense = jnp.pad(dense, ((0, 0), (0, 0), (0, nq * block_q - t), (0, nk * block_k - s)))
    return dense.reshape(b, h, nq, block_q, nk, block_k).any(axis=(3, 5))


def _row_bounds(q_len: int, block_q: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last query row of each query block (the last block may be partial)."""
    first = np.arange(_cdiv(q_len, block_q)) * block_q
    last = np.minimum(first + block_q, q_len) - 1
    return first, last


@functools.partial(jax.jit, static_argnums=(1, 2))
def _materialize(mask: Mask, q_len: int, kv_len: int) -> jax.Array:
    # One compiled program per mask structure and shape (eager op-by-op is slow on CPU).
    q_pos = jnp.arange(q_len, dtype=jnp.int32)[:, None]
    k_pos = jnp.arange(kv_len, dtype=jnp.int32)[None, :]
    out = mask.allowed(q_pos, k_pos)
    return jnp.broadcast_to(out, (*out.shape[:2], q_len, kv_len))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _dense_block_lists(mask, q_len, kv_len, block_q, block_k, max_k) -> BlockLists:
    any_blocks = _block_any(_materialize(mask, q_len, kv_len), block_q, block_k)
    return _lists_from_block_matrix(any_blocks, max_k)


class Mask:
    """Base class. Subclasses implement :meth:`allowed`, :meth:`leading_shape`, :meth:`check`
    and must be JAX pytrees (arrays as leaves, structure as static aux data)."""

    def allowed(self, q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
        """bool ``[B|1, H|1, *shape]``: may query ``q_pos`` attend key ``k_pos``.

        ``q_pos`` and ``k_pos`` are int arrays (no batch/head axes) that broadcast to ``shape``.
        Positions must lie in ``[0, q_len)`` / ``[0, kv_len)``.
        """
        raise NotImplementedError

    def leading_shape(self) -> tuple[int, int]:
        """``(B|1, H|1)``: the batch and head sizes the mask carries."""
        return (1, 1)

    def check(self, q_len: int, kv_len: int) -> None:
        """Raise ValueError if the mask cannot describe a ``[q_len, kv_len]`` attention."""

    def materialize(self, q_len: int, kv_len: int) -> jax.Array:
        """bool ``[B|1, H|1, q_len, kv_len]``."""
        self.check(q_len, kv_len)
        return _materialize(self, q_len, kv_len)

    def pointwise(self) -> Pointwise:
        """The mask as a pointwise function of positions and operands (kernels, xla path)."""
        raise NotImplementedError

    def pointwise_rows(self, q_len: int) -> Pointwise:
        """The pointwise form, exact for any mask, for evaluators that see whole key rows
        (``k_pos`` = every key) and slice operands by query only: operands may be
        ``[B|1, H|1, T|1, *]`` with any last axis. :meth:`pointwise` for every mask but
        ``BlockSparse``."""
        del q_len
        return self.pointwise()

    def block_multiple(self) -> tuple[int, int] | None:
        """``(mq, mk)`` when the mask is exact only at block sizes dividing them (else None)."""
        return None

    def static_block_lists(self, q_len, kv_len, block_q, block_k) -> BlockLists | None:
        """numpy :class:`BlockLists` ``[1, 1, nq, max_k]`` when known without tracing, else None."""
        return None

    def max_k_bound(self, q_len: int, kv_len: int, block_q: int, block_k: int) -> int:
        """A static upper bound on ``block_lists(...).max_k``."""
        lists = self.static_block_lists(q_len, kv_len, block_q, block_k)
        return _cdiv(kv_len, block_k) if lists is None else lists.max_k

    def block_lists(self, q_len: int, kv_len: int, block_q: int, block_k: int) -> BlockLists:
        """Key blocks with any allowed pair, per query block: the static lists if known, else
        the dense mask reduced per block."""
        _check_block_args(q_len, kv_len, block_q, block_k)
        self.check(q_len, kv_len)
        lists = self.static_block_lists(q_len, kv_len, block_q, block_k)
        if lists is not None:
            return _as_jnp(lists)
        max_k = self.max_k_bound(q_len, kv_len, block_q, block_k)
        return _dense_block_lists(self, q_len, kv_len, block_q, block_k, max_k)

    def tile_lists(self, q_len: int, kv_len: int, block_q: int, block_k: int) -> BlockLists:
        """The tiles kernels and the xla path visit: :meth:`block_lists`, or for a combination a
        cheap superset of it (tiles outside the mask are masked inside the tile)."""
        return self.block_lists(q_len, kv_len, block_q, block_k)

    def shift_queries(self, offset: int | jax.Array) -> Mask:
        """The mask with query row ``i`` moved to absolute position ``i + offset`` (KV-cache
        decoding). Position masks shift; array masks (their rows index the new queries) and
        block-sparse routing stay as they are."""
        return self

    def __and__(self, other: Mask | None) -> Mask:
        if other is None:
            return self
        if not isinstance(other, Mask):
            return NotImplemented
        return And(self, other)

    def __rand__(self, other: Mask | None) -> Mask:
        if other is None:
            return self
        return NotImplemented


class PositionalMask(Mask):
    """A mask that depends on positions only (no batch/head axes, no arrays but scalars)."""

    def allowed_at(self, q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
        """bool with the broadcast shape of ``q_pos`` and ``k_pos`` (any rank)."""
        raise NotImplementedError

    def allowed(self, q_pos, k_pos):
        return self.allowed_at(q_pos, k_pos)[None, None]

    def pointwise(self):
        return Pointwise(lambda q_pos, k_pos: self.allowed_at(q_pos, k_pos), ())


# ----------------------------------------------------------------------------- positional


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class Causal(PositionalMask):
    """Query ``i`` sees keys ``j <= i + offset``.

    ``offset`` shifts the queries: with a KV cache the new queries start at absolute position
    ``offset`` (``offset = S - T`` aligns the diagonal bottom-right). A Python int offset is
    static (analytic block lists of tight width); a traced scalar (e.g. a cache index) is a
    pytree leaf and gives block lists of width ``ceil(S / block_k)``.
    """

    offset: int | jax.Array = 0

    def tree_flatten(self):
        if _is_static_int(self.offset):
            return (), int(self.offset)
        return (self.offset,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux) if aux is not None else cls(children[0])

    def shift_queries(self, offset):
        return Causal(self.offset + offset)

    def allowed_at(self, q_pos, k_pos):
        return k_pos <= q_pos + self.offset

    def pointwise(self):
        if _is_static_int(self.offset):
            return super().pointwise()
        offset = jnp.asarray(self.offset, jnp.int32).reshape(1, 1, 1, 1)
        return Pointwise(lambda q_pos, k_pos, off: k_pos <= q_pos + off, (offset,))

    def static_block_lists(self, q_len, kv_len, block_q, block_k):
        if not _is_static_int(self.offset):
            return None
        _, last = _row_bounds(q_len, block_q)
        hi = np.minimum(last + int(self.offset), kv_len - 1)  # last allowed key
        count = np.where(hi >= 0, hi // block_k + 1, 0)
        return _lists_from_ranges_np(np.zeros_like(count), count)

    def block_lists(self, q_len, kv_len, block_q, block_k):
        if _is_static_int(self.offset):
            return super().block_lists(q_len, kv_len, block_q, block_k)
        _check_block_args(q_len, kv_len, block_q, block_k)
        return _causal_dynamic_lists(self.offset, q_len, kv_len, block_q, block_k)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _causal_dynamic_lists(offset, q_len, kv_len, block_q, block_k) -> BlockLists:
    nk = _cdiv(kv_len, block_k)
    _, last = _row_bounds(q_len, block_q)
    hi = jnp.minimum(jnp.asarray(last) + offset, kv_len - 1)
    count = jnp.where(hi >= 0, hi // block_k + 1, 0).astype(jnp.int32)  # [nq]
    slot = jnp.arange(nk, dtype=jnp.int32)
    indices = jnp.where(slot < count[:, None], slot, -1)
    return BlockLists(indices[None, None], count[None, None])


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class LocalWindow1D(PositionalMask):
    """Query ``i`` sees keys ``j`` in ``[i + offset - left, i + offset + right]`` (sliding window).

    ``LocalWindow1D(w, 0)`` is causal sliding-window attention. ``offset`` shifts the queries
    like :class:`Causal`'s: with a KV cache the new queries start at absolute position
    ``offset`` (``shift_queries`` sets it; ``MultiHeadAttention`` does so when decoding). A
    Python int offset is static (analytic block lists); a traced scalar is a pytree leaf.
    """

    left: int
    right: int
    offset: int | jax.Array = 0

    def __post_init__(self):
        for name in ("left", "right"):
            val = getattr(self, name)
            if not _is_static_int(val) or val < 0:
                raise ValueError(f"LocalWindow1D.{name} must be an int >= 0, got {val!r}")

    def tree_flatten(self):
        if _is_static_int(self.offset):
            return (), (self.left, self.right, int(self.offset))
        return (self.offset,), (self.left, self.right, None)

    @classmethod
    def tree_unflatten(cls, aux, children):
        left, right, offset = aux
        return cls(left, right, offset if offset is not None else children[0])

    def shift_queries(self, offset):
        return dataclasses.replace(self, offset=self.offset + offset)

    def allowed_at(self, q_pos, k_pos):
        q_pos = q_pos + self.offset
        return (k_pos >= q_pos - self.left) & (k_pos <= q_pos + self.right)

    def pointwise(self):
        if _is_static_int(self.offset):
            return super().pointwise()
        offset = jnp.asarray(self.offset, jnp.int32).reshape(1, 1, 1, 1)
        at = functools.partial(LocalWindow1D, self.left, self.right)
        return Pointwise(lambda q_pos, k_pos, off: at(off).allowed_at(q_pos, k_pos), (offset,))

    def max_k_bound(self, q_len, kv_len, block_q, block_k):
        if _is_static_int(self.offset):
            return super().max_k_bound(q_len, kv_len, block_q, block_k)
        span = self.left + self.right + min(block_q, q_len)  # keys one query block can see
        return min(_cdiv(kv_len, block_k), _cdiv(span - 1, block_k) + 1)

    def static_block_lists(self, q_len, kv_len, block_q, block_k):
        if not _is_static_int(self.offset):
            return None
        first, last = _row_bounds(q_len, block_q)
        return _lists_from_ranges_np(*_window_ranges(self, first, last, kv_len, block_k, np))

    def block_lists(self, q_len, kv_len, block_q, block_k):
        if _is_static_int(self.offset):
            return super().block_lists(q_len, kv_len, block_q, block_k)
        _check_block_args(q_len, kv_len, block_q, block_k)
        max_k = self.max_k_bound(q_len, kv_len, block_q, block_k)
        return _window_dynamic_lists(self, q_len, kv_len, block_q, block_k, max_k)


def _window_ranges(window: LocalWindow1D, first, last, kv_len: int, block_k: int, xp):
    """First key block and block count per query block (rows ``first..last``); the union of
    the rows' windows is contiguous."""
    lo = xp.maximum(first + window.offset - window.left, 0)
    hi = xp.minimum(last + window.offset + window.right, kv_len - 1)
    count = xp.where(hi >= lo, hi // block_k - lo // block_k + 1, 0)
    return lo // block_k, count


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _window_dynamic_lists(window, q_len, kv_len, block_q, block_k, max_k) -> BlockLists:
    first, last = _row_bounds(q_len, block_q)
    start, count = _window_ranges(
        window, jnp.asarray(first), jnp.asarray(last), kv_len, block_k, jnp
    )
    count = count.astype(jnp.int32)
    slot = jnp.arange(max_k, dtype=jnp.int32)
    indices = jnp.where(slot < count[:, None], start[:, None] + slot, -1).astype(jnp.int32)
    return BlockLists(indices[None, None], count[None, None])


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=[], meta_fields=["grid", "radius", "window"]
)
@dataclasses.dataclass(frozen=True)
class LocalWindow2D(PositionalMask):
    """Tokens of an ``(H, W)`` grid; query sees keys within Chebyshev distance ``radius``.

    ``max(|dy|, |dx|) <= radius``: a square ``(2r+1) x (2r+1)`` neighbourhood like a
    convolution / neighbourhood-attention window, clipped (not shifted) at the image border.
    Token order: row-major (token ``n`` sits at ``(n // W, n % W)``), or window-first with
    ``window=(wh, ww)`` (see :mod:`attnzoo.layers.token_order`), where a neighbourhood spans
    few contiguous runs of tokens and so few key blocks. Sequences may be shorter than
    ``H * W`` (a prefix of the order), never longer.
    """

    grid: tuple[int, int]
    radius: int
    window: tuple[int, int] | None = None

    def __post_init__(self):
        grid = tuple(self.grid)
        if len(grid) != 2:
            raise ValueError(f"LocalWindow2D.grid must be (H, W), got {self.grid!r}")
        _check_positive(grid_h=grid[0], grid_w=grid[1])
        object.__setattr__(self, "grid", (int(grid[0]), int(grid[1])))
        if not _is_static_int(self.radius) or self.radius < 0:
            raise ValueError(f"LocalWindow2D.radius must be an int >= 0, got {self.radius!r}")
        if self.window is not None:
            window = tuple(self.window)
            if len(window) != 2:
                raise ValueError(f"LocalWindow2D.window must be (wh, ww), got {self.window!r}")
            _check_positive(window_h=window[0], window_w=window[1])
            if grid[0] % window[0] or grid[1] % window[1]:
                raise ValueError(f"LocalWindow2D grid {grid} must be a multiple of window {window}")
            object.__setattr__(self, "window", (int(window[0]), int(window[1])))

    def check(self, q_len, kv_len):
        n = self.grid[0] * self.grid[1]
        if q_len > n or kv_len > n:
            raise ValueError(
                f"LocalWindow2D(grid={self.grid}) holds {n} tokens, got q_len={q_len}, "
                f"kv_len={kv_len}"
            )

    def shift_queries(self, offset):
        raise ValueError("LocalWindow2D cannot shift its queries: no KV-cache decoding on a grid")

    def coords(self, pos):
        """Grid ``(y, x)`` of token positions (works on numpy and jnp ints)."""
        w = self.grid[1]
        if self.window is None:
            return pos // w, pos % w
        wh, ww = self.window
        win, inner = pos // (wh * ww), pos % (wh * ww)
        per_row = w // ww
        return (win // per_row) * wh + inner // ww, (win % per_row) * ww + inner % ww

    def allowed_at(self, q_pos, k_pos):
        qy, qx = self.coords(q_pos)
        ky, kx = self.coords(k_pos)
        return jnp.maximum(jnp.abs(qy - ky), jnp.abs(qx - kx)) <= self.radius

    def static_block_lists(self, q_len, kv_len, block_q, block_k):
        # Per query block: paint its tokens on the grid, dilate by the radius, read the keys.
        gh, gw = self.grid
        r = self.radius
        nq, nk = _cdiv(q_len, block_q), _cdiv(kv_len, block_k)
        qy, qx = self.coords(np.arange(q_len))
        img = np.zeros((nq, gh + 2 * r, gw + 2 * r), dtype=bool)
        img[np.arange(q_len) // block_q, qy + r, qx + r] = True
        rows = functools.reduce(np.logical_or, (img[:, i : i + gh] for i in range(2 * r + 1)))
        near = functools.reduce(np.logical_or, (rows[:, :, i : i + gw] for i in range(2 * r + 1)))
        ky, kx = self.coords(np.arange(kv_len))
        keys = np.zeros((nq, nk * block_k), dtype=bool)
        keys[:, :kv_len] = near[:, ky, kx]
        return _lists_from_block_matrix_np(keys.reshape(nq, nk, block_k).any(-1))


# ----------------------------------------------------------------------------- array masks


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["indices"],
    meta_fields=["block_q", "block_k"],
)
@dataclasses.dataclass(frozen=True, eq=False)
class BlockSparse(Mask):
    """Routed block-sparse attention (MoBA, BiFormer).

    Query block ``n`` (rows ``[n*block_q, (n+1)*block_q)``) sees the key blocks listed in
    ``indices[..., n, :]`` (keys ``[m*block_k, (m+1)*block_k)``). ``indices``: int
    ``[B|1, H|1, ceil(T/block_q), k]`` in any order; ``-1`` (or any id outside
    ``[0, ceil(S/block_k))``) marks an unused slot; duplicates count once.
    """

    block_q: int
    block_k: int
    indices: jax.Array

    def __post_init__(self):
        _check_positive(block_q=self.block_q, block_k=self.block_k)

    def leading_shape(self):
        return tuple(self.indices.shape[:2])

    def check(self, q_len, kv_len):
        if self.indices.ndim != 4:
            raise ValueError(
                f"BlockSparse.indices must be [B|1, H|1, num_q_blocks, k], got shape "
                f"{self.indices.shape}"
            )
        nq = _cdiv(q_len, self.block_q)
        if self.indices.shape[2] != nq:
            raise ValueError(
                f"BlockSparse.indices has {self.indices.shape[2]} query blocks, but q_len={q_len} "
                f"with block_q={self.block_q} needs {nq} (indices shape {self.indices.shape})"
            )

    def pointwise(self):
        # Exact at block sizes dividing (block_q, block_k): there the block lists say it all.
        return Pointwise(lambda q_pos, k_pos: jnp.ones((), bool), ())

    def pointwise_rows(self, q_len):
        """Operand: each query's key-block list ``[B|1, H|1, q_len, k]``."""
        lists = jnp.repeat(self.indices.astype(jnp.int32), self.block_q, axis=2)[:, :, :q_len]
        block_k = self.block_k

        def fn(q_pos, k_pos, lists):  # lists [..., t, k], k_pos [s] -> [..., t, s]
            return jnp.any(lists[..., None, :] == (k_pos // block_k)[:, None], axis=-1)

        return Pointwise(fn, (lists,))

    def block_multiple(self):
        return (self.block_q, self.block_k)

    def allowed(self, q_pos, k_pos):
        q_blk = q_pos // self.block_q
        k_blk = k_pos // self.block_k
        sel = self.indices[:, :, q_blk]  # [B, H, *q_shape, k]
        return jnp.any(sel == k_blk[..., None], axis=-1)  # [B, H, *shape]

    def _overlaps(self, q_len, kv_len, block_q, block_k) -> tuple[np.ndarray, np.ndarray]:
        """Static overlap matrices: own q blocks x requested q blocks, same for keys."""

        def overlap(n, own, req):
            pos = np.arange(n)
            m = np.zeros((_cdiv(n, own), _cdiv(n, req)), dtype=bool)
            m[pos // own, pos // req] = True
            return m

        return overlap(q_len, self.block_q, block_q), overlap(kv_len, self.block_k, block_k)

    def max_k_bound(self, q_len, kv_len, block_q, block_k):
        nk = _cdiv(kv_len, block_k)
        k = self.indices.shape[-1]
        if (block_q, block_k) == (self.block_q, self.block_k):
            return min(k, nk)
        q_ov, k_ov = self._overlaps(q_len, kv_len, block_q, block_k)
        return min(nk, int(q_ov.sum(0).max()) * k * int(k_ov.sum(1).max()))

    def block_lists(self, q_len, kv_len, block_q, block_k):
        """From ``indices`` directly when block sizes match; else re-blocked exactly."""
        _check_block_args(q_len, kv_len, block_q, block_k)
        self.check(q_len, kv_len)
        if (block_q, block_k) == (self.block_q, self.block_k):
            return _sparse_sorted_unique(self.indices, _cdiv(kv_len, self.block_k))
        q_ov, k_ov = self._overlaps(q_len, kv_len, block_q, block_k)
        max_k = self.max_k_bound(q_len, kv_len, block_q, block_k)
        return _sparse_reblock(self.indices, q_ov, k_ov, max_k)


@functools.partial(jax.jit, static_argnums=(1,))
def _sparse_sorted_unique(indices, nk) -> BlockLists:
    """Sort and de-duplicate block ids ``[B, H, nq, k]``; ids outside ``[0, nk)`` drop out."""
    idx = indices.astype(jnp.int32)
    idx = jnp.sort(jnp.where((idx >= 0) & (idx < nk), idx, nk), axis=-1)
    dup = jnp.concatenate(
        [jnp.zeros_like(idx[..., :1], dtype=bool), idx[..., 1:] == idx[..., :-1]], axis=-1
    )
    idx = jnp.sort(jnp.where(dup, nk, idx), axis=-1)[..., : min(idx.shape[-1], nk)]
    counts = jnp.sum(idx < nk, axis=-1, dtype=jnp.int32)
    return BlockLists(jnp.where(idx < nk, idx, -1), counts)


@functools.partial(jax.jit, static_argnums=(3,))
def _sparse_reblock(indices, q_ov, k_ov, max_k) -> BlockLists:
    """Exact block lists at other block sizes. ``q_ov`` ``[nq_own, nq]`` / ``k_ov``
    ``[nk_own, nk]``: which own blocks overlap which requested blocks."""
    own = jnp.any(
        jax.nn.one_hot(indices, k_ov.shape[0], dtype=jnp.float32), axis=-2
    )  # [B, H, nq_own, nk_own]; out-of-range ids one-hot to zeros
    hits = jnp.einsum(
        "qn,bhqk,km->bhnm", q_ov.astype(jnp.float32), own, k_ov.astype(jnp.float32)
    )  # [B, H, nq, nk]: number of overlapping (own q block, own k block) pairs
    return _lists_from_block_matrix(hits > 0, max_k)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["q_ids", "kv_ids"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True, eq=False)
class Segments(Mask):
    """Packed sequences: attend only where ``q_ids[b, i] == kv_ids[b, j]``.

    ``q_ids``: int ``[B, T]``; ``kv_ids``: int ``[B, S]`` (defaults to ``q_ids``). Padding
    tokens can take their own id (they then attend among themselves, never to real tokens).
    """

    q_ids: jax.Array
    kv_ids: jax.Array | None = None

    @property
    def _kv_ids(self):
        return self.q_ids if self.kv_ids is None else self.kv_ids

    def leading_shape(self):
        return (self.q_ids.shape[0], 1)

    def check(self, q_len, kv_len):
        q_ids, kv_ids = self.q_ids, self._kv_ids
        if q_ids.ndim != 2 or kv_ids.ndim != 2 or q_ids.shape[0] != kv_ids.shape[0]:
            raise ValueError(
                f"Segments ids must be [B, T] and [B, S], got {q_ids.shape} and {kv_ids.shape}"
            )
        if q_ids.shape[1] != q_len or kv_ids.shape[1] != kv_len:
            raise ValueError(
                f"Segments ids shapes {q_ids.shape} / {kv_ids.shape} do not match "
                f"q_len={q_len}, kv_len={kv_len}"
            )

    def pointwise(self):
        q_ids = self.q_ids.astype(jnp.int32)[:, None, :, None]  # [B, 1, T, 1]
        kv_ids = self._kv_ids.astype(jnp.int32)[:, None, None, :]  # [B, 1, 1, S]
        return Pointwise(lambda q_pos, k_pos, a, b: a == b, (q_ids, kv_ids))

    def allowed(self, q_pos, k_pos):
        q = self.q_ids[:, q_pos]  # [B, *q_shape]
        kv = self._kv_ids[:, k_pos]  # [B, *k_shape]
        return (q == kv)[:, None]  # [B, 1, *shape]


@functools.partial(jax.tree_util.register_dataclass, data_fields=["mask"], meta_fields=[])
@dataclasses.dataclass(frozen=True, eq=False)
class Dense(Mask):
    """An explicit bool mask ``[B|1, H|1, T, S]`` or ``[T, S]`` (True = may attend)."""

    mask: jax.Array

    @property
    def _mask4(self) -> jax.Array:
        m = jnp.asarray(self.mask, dtype=bool)
        return m[None, None] if m.ndim == 2 else m

    def leading_shape(self):
        return tuple(self.mask.shape[:2]) if self.mask.ndim == 4 else (1, 1)

    def check(self, q_len, kv_len):
        if self.mask.ndim not in (2, 4) or tuple(self.mask.shape[-2:]) != (q_len, kv_len):
            raise ValueError(
                f"Dense mask must be [B|1, H|1, T, S] or [T, S] with (T, S)=({q_len}, {kv_len}), "
                f"got shape {self.mask.shape}"
            )

    def pointwise(self):
        return Pointwise(lambda q_pos, k_pos, m: m != 0, (self._mask4.astype(jnp.int32),))

    def allowed(self, q_pos, k_pos):
        return self._mask4[:, :, q_pos, k_pos]  # [B, H, *shape]


# ----------------------------------------------------------------------------- combination


def _all_of(parts: list[Pointwise]) -> Pointwise:
    """The conjunction of pointwise forms (operands concatenated in order)."""
    sizes = [len(p.operands) for p in parts]

    def fn(q_pos, k_pos, *values):
        out, i = [], 0
        for part, n in zip(parts, sizes, strict=True):
            out.append(part.fn(q_pos, k_pos, *values[i : i + n]))
            i += n
        return functools.reduce(jnp.logical_and, out)

    return Pointwise(fn, tuple(o for p in parts for o in p.operands))


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, init=False, eq=False)
class And(Mask):
    """Intersection of masks: a pair is allowed when every mask allows it. ``a & b``."""

    masks: tuple[Mask, ...]

    def __init__(self, *masks: Mask | None):
        flat = []
        for m in masks:
            if m is None:
                continue
            if isinstance(m, And):
                flat.extend(m.masks)
            elif isinstance(m, Mask):
                flat.append(m)
            else:
                raise TypeError(f"And() takes Mask objects, got {type(m).__name__}")
        if not flat:
            raise ValueError("And() needs at least one mask")
        object.__setattr__(self, "masks", tuple(flat))

    def tree_flatten(self):
        return self.masks, None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        object.__setattr__(obj, "masks", tuple(children))
        return obj

    def leading_shape(self):
        b = h = 1
        for m in self.masks:
            mb, mh = m.leading_shape()
            b, h = max(b, mb), max(h, mh)
        return (b, h)

    def check(self, q_len, kv_len):
        for m in self.masks:
            m.check(q_len, kv_len)

    def shift_queries(self, offset):
        return And(*(m.shift_queries(offset) for m in self.masks))

    def allowed(self, q_pos, k_pos):
        return functools.reduce(jnp.logical_and, (m.allowed(q_pos, k_pos) for m in self.masks))

    def max_k_bound(self, q_len, kv_len, block_q, block_k):
        # The intersection's blocks are a subset of every component's blocks.
        return min(m.max_k_bound(q_len, kv_len, block_q, block_k) for m in self.masks)

    def pointwise(self):
        return _all_of([m.pointwise() for m in self.masks])

    def pointwise_rows(self, q_len):
        return _all_of([m.pointwise_rows(q_len) for m in self.masks])

    def block_multiple(self):
        multiples = [m.block_multiple() for m in self.masks]
        multiples = [x for x in multiples if x is not None]
        if not multiples:
            return None
        return tuple(functools.reduce(np.gcd, axis) for axis in zip(*multiples, strict=True))

    def static_block_lists(self, q_len, kv_len, block_q, block_k):
        """Intersect the components' static block matrices, then keep the candidate tiles
        where the combined mask allows a pair (evaluated at compile time)."""
        parts = [m.static_block_lists(q_len, kv_len, block_q, block_k) for m in self.masks]
        if any(p is None for p in parts) or not all(
            isinstance(m, PositionalMask) for m in self.masks
        ):
            return None
        nk = _cdiv(kv_len, block_k)
        hit = functools.reduce(np.logical_and, (_block_matrix_np(p, nk) for p in parts))
        qb, kb = np.nonzero(hit)
        q_pos = np.minimum(qb[:, None, None] * block_q + np.arange(block_q)[:, None], q_len - 1)
        k_pos = kb[:, None, None] * block_k + np.arange(block_k)[None, :]
        with jax.ensure_compile_time_eval():
            ok = np.asarray(self.allowed(q_pos, np.minimum(k_pos, kv_len - 1)))[0, 0]
        hit[qb, kb] = (ok & (k_pos < kv_len)).any(axis=(1, 2))
        return _lists_from_block_matrix_np(hit)

    def tile_lists(self, q_len, kv_len, block_q, block_k):
        """Static masks: the exact lists. Else the intersection of the components' tiles
        (never the dense ``[T, S]`` mask unless a component is dense itself)."""
        if self.static_block_lists(q_len, kv_len, block_q, block_k) is not None:
            return self.block_lists(q_len, kv_len, block_q, block_k)
        _check_block_args(q_len, kv_len, block_q, block_k)
        self.check(q_len, kv_len)
        nk = _cdiv(kv_len, block_k)
        hit = functools.reduce(
            jnp.logical_and,
            (m.tile_lists(q_len, kv_len, block_q, block_k).matrix(nk) for m in self.masks),
        )
        return _lists_from_block_matrix(hit, self.max_k_bound(q_len, kv_len, block_q, block_k))


# ----------------------------------------------------------------------------- None-aware


def dense_mask(mask: Mask | None, q_len: int, kv_len: int) -> jax.Array:
    """bool ``[B|1, H|1, T, S]``; ``None`` -> all True ``[1, 1, T, S]``."""
    if mask is None:
        return jnp.ones((1, 1, q_len, kv_len), dtype=bool)
    return mask.materialize(q_len, kv_len)


def tile_lists(
    mask: Mask | None, q_len: int, kv_len: int, block_q: int, block_k: int
) -> BlockLists:
    """:meth:`Mask.tile_lists`; ``None`` -> every key block for every query block."""
    if mask is not None:
        return mask.tile_lists(q_len, kv_len, block_q, block_k)
    return block_lists(None, q_len, kv_len, block_q, block_k)


def block_lists(
    mask: Mask | None, q_len: int, kv_len: int, block_q: int, block_k: int
) -> BlockLists:
    """:meth:`Mask.block_lists`; ``None`` -> every key block for every query block."""
    if mask is not None:
        return mask.block_lists(q_len, kv_len, block_q, block_k)
    _check_block_args(q_len, kv_len, block_q, block_k)
    nq, nk = _cdiv(q_len, block_q), _cdiv(kv_len, block_k)
    indices = jnp.broadcast_to(jnp.arange(nk, dtype=jnp.int32), (1, 1, nq, nk))
    return BlockLists(indices, jnp.full((1, 1, nq), nk, dtype=jnp.int32))
