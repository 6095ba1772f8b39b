"""Registered language models: `lm_<size>` presets and the scaled-down Motif-2 preset.

Sizes (width, depth, heads, kv heads): `lm_nano` 64/2/4/2, `lm_tiny` 128/4/4/2,
`lm_small` 256/6/8/4, `lm_base` 512/8/8/4; any field can be overridden by keyword.
"""

import functools

from attnzoo.zoo.language.model import LanguageModel
from attnzoo.zoo.registry import register

SIZES = {
    "nano": dict(width=64, depth=2, num_heads=4, num_kv_heads=2),
    "tiny": dict(width=128, depth=4, num_heads=4, num_kv_heads=2),
    "small": dict(width=256, depth=6, num_heads=8, num_kv_heads=4),
    "base": dict(width=512, depth=8, num_heads=8, num_kv_heads=4),
}

for _size, _preset in SIZES.items():
    register(f"lm_{_size}")(functools.partial(LanguageModel, **_preset))
