"""MoBA at 8K context on Python's help topics (`pydoc_data`, no download).

    python -m attnzoo.train --config=lm_moba_long --workdir=runs/lm_moba_long

Width 128, 4 layers of mixture-of-block attention (blocks of 512 keys, each query's own
block plus its top-3 past blocks by gate score: the published 8K setting) over 8192 bytes,
SwiGLU MLP, AdamW, 300 steps of 8 sequences (51 training sequences of 8K bytes: ~47
epochs). `benchmarks/language.py` times a MoBA layer against dense causal attention at 8K
and 16K; a full run of this config has not been timed yet.
"""

from attnzoo.configs._language import finish, language_config


def get_config(arg: str | None = None):
    c = language_config(
        "pydoc_text",
        model=dict(
            name="lm_tiny",
            width=128,
            depth=4,
            num_heads=4,
            num_kv_heads=2,
            attention="moba",
            attention_options={"moba": {"block_size": 512, "top_k": 3}},
            mlp="swiglu",
            mlp_dim=344,
            tie_embeddings=True,
        ),
        context_len=8192,
        steps=300,
        batch=8,
    )
    c.train.eval_batch_size = 8
    smoke = {"attention_options": {"moba": {"block_size": 4, "top_k": 2}}}
    return finish(c, "lm_moba_long", arg, smoke_model=smoke)
