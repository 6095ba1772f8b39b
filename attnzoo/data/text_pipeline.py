"""grain pipelines of packed token sequences over a prepared text dataset.

    split text → tokenize (whole split) → sequences of `context_len + 1` tokens with stride
    `context_len` → [slice] → shuffle(seed) → repeat → shard → batch

Sequence `i` covers tokens `[i L, (i + 1) L]` (L = context length): `inputs` are its first
L tokens, `targets` its last L (next-token prediction); a split of n tokens gives
`(n - 1) // L` sequences. Batches: `inputs`, `targets` int32 `[b, L]`. A batch is a pure
function of (seed, position), so the iterator state is `{"next_index": int}`.
"""

from __future__ import annotations

import functools

import grain
import numpy as np

from attnzoo.data import registry
from attnzoo.data.pipeline import RecordSource, parse_split


@functools.lru_cache(maxsize=8)
def split_text(name: str, split: str, tfds_dir: str | None = None, data_dir: str | None = None):
    """The whole text of `name[split]` (a split name without slice)."""
    spec = _text_spec(name)
    registry.check_split(spec, split)
    builder = registry.prepare(name, tfds_dir=tfds_dir, data_dir=data_dir)
    rows = RecordSource(builder, split).read_all()
    return b"".join(row["bytes"][: row["length"]].tobytes() for row in rows).decode()


_TOKENS: dict[tuple, np.ndarray] = {}


def split_tokens(name, split, tokenizer, tfds_dir=None, data_dir=None) -> np.ndarray:
    """int32 ids of the whole split (cached per tokenizer fingerprint)."""
    key = (name, split, tokenizer.fingerprint, tfds_dir, data_dir)
    if key not in _TOKENS:
        _TOKENS[key] = tokenizer.encode(split_text(name, split, tfds_dir, data_dir))
    return _TOKENS[key]


class SequenceSource:
    """Random-access packed sequences of a token array (see module docstring)."""

    def __init__(self, tokens: np.ndarray, context_len: int):
        self.tokens, self.context_len = tokens, context_len

    def __len__(self) -> int:
        return max(0, (len(self.tokens) - 1) // self.context_len)

    def __getitem__(self, index) -> dict[str, np.ndarray]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"sequence {index} out of range [0, {len(self)})")
        start = index * self.context_len
        window = self.tokens[start : start + self.context_len + 1]
        return {"inputs": window[:-1], "targets": window[1:]}


def _text_spec(name: str):
    spec = registry.get_spec(name)
    if spec.kind != "text":
        raise ValueError(f"{name} is a {spec.kind} dataset, not text")
    return spec


def make_text_dataset(
    name: str,
    split: str,
    *,
    tokenizer,
    context_len: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool,
    data_dir: str | None = None,
    tfds_dir: str | None = None,
    process_index: int = 0,
    process_count: int = 1,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """Batched packed sequences of `name[split]` for this process (arguments as
    `pipeline.make_dataset`; `tokenizer` from `attnzoo.data.tokenizer`)."""
    split, rows = parse_split(split)
    source = SequenceSource(split_tokens(name, split, tokenizer, tfds_dir, data_dir), context_len)
    if len(range(len(source))[rows]) == 0:
        raise ValueError(
            f"{name}[{split}] holds {len(source.tokens)} tokens: no sequence of "
            f"context_len={context_len} (+1) in the selected rows"
        )
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if batch_size <= 0 or batch_size % process_count:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of process_count={process_count}"
        )
    ds = grain.MapDataset.source(source)[rows].seed(seed)
    if shuffle:
        ds = ds.shuffle()
    if repeat:
        ds = ds.repeat()
    ds = ds[process_index::process_count]
    ds = ds.batch(batch_size // process_count, drop_remainder=drop_remainder)
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
