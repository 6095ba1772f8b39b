"""Dense byte-level LM on Python's own help topics (`pydoc_data`): no download needed.

    python -m attnzoo.train --config=lm_tiny_pydoc --workdir=runs/lm_tiny_pydoc
    python -m attnzoo.sample --workdir=runs/lm_tiny_pydoc --prompt="The for statement"

`lm_nano` (width 64, 2 layers, GELU MLP) over 128 bytes, 300 steps of 32 (~2.2 epochs of
the 419,674 training bytes): the quick demo of the language family (colab/language.ipynb).
"""

from attnzoo.configs._language import finish, language_config
from attnzoo.zoo.language.presets import SIZES


def get_config(arg: str | None = None):
    c = language_config(
        "pydoc_text",
        model=dict(
            name="lm_nano", **SIZES["nano"], attention="dense", mlp="gelu", tie_embeddings=True
        ),
        context_len=128,
        steps=300,
        batch=32,
    )
    return finish(c, "lm_tiny_pydoc", arg)
