"""Dense byte-level LM on tiny-shakespeare: the language family's baseline.

    python -m attnzoo.train --config=lm_tiny_shakespeare --workdir=runs/lm_tiny_shakespeare
    python -m attnzoo.sample --workdir=runs/lm_tiny_shakespeare --prompt="ROMEO:"

`lm_tiny` (width 128, 4 layers, 4 query / 2 kv heads of 32, SwiGLU MLP of 344, tied
embeddings; 758,912 params) over 256 bytes of context, AdamW, 2000 steps of 32 sequences;
validation loss / perplexity / bits per byte on the last 10% of the text, keeping the
checkpoint of lowest validation loss (`WORKDIR/best/`: the 2000 steps overfit after ~1500).
`lm_motif_tiny_shakespeare` is the Motif-2 counterpart at the same parameter count;
benchmarks/README.md has the measured figures.
"""

from attnzoo.configs._language import dense_tiny, finish, language_config


def get_config(arg: str | None = None):
    c = language_config(
        "tinyshakespeare", model=dense_tiny(), context_len=256, steps=2000, batch=32
    )
    return finish(c, "lm_tiny_shakespeare", arg)
