"""Scaled-down Motif-2 on tiny-shakespeare: grouped differential attention, PolyNorm-gated
MLP and MuonClip, at the dense baseline's parameter count, data and budget.

    python -m attnzoo.train --config=lm_motif_tiny_shakespeare --workdir=runs/lm_motif

Width 128, 4 layers; GDA with 8 signal heads sharing 2 noise heads (Motif-2's 4 : 1) over
2 kv heads of dim 12; PolyNorm MLP of 336 (759,216 params vs the dense `lm_tiny_shakespeare`'s
758,912). Muon (momentum 0.95, updates scaled to AdamW's RMS by 0.2 as Moonlight / Kimi K2;
AdamW for embeddings and norms) with QK-Clip at τ = 100, at a peak learning rate of 1e-2
(the baseline's AdamW: 3e-3): of 3e-3, 6e-3 and 1e-2 on the benchmark's budget, 1e-2 gave
the lowest validation loss. `benchmarks/language.py` compares it with the baseline.
"""

from attnzoo.configs._language import finish, language_config

MOTIF_TINY = dict(
    name="lm_tiny",
    width=128,
    depth=4,
    num_heads=8,
    num_kv_heads=2,
    head_dim=12,
    attention="gda",
    attention_options={"gda": {"noise_heads": 2}},
    mlp="polynorm",
    mlp_dim=336,
    tie_embeddings=True,
)


def get_config(arg: str | None = None):
    c = language_config("tinyshakespeare", model=MOTIF_TINY, context_len=256, steps=2000, batch=32)
    c.optimizer.update(name="muon", consistent_rms=0.2, qk_clip=100.0, learning_rate=1e-2)
    smoke = {"head_dim": 16, "attention_options": {"gda": {"noise_heads": 1}}}
    return finish(c, "lm_motif_tiny_shakespeare", arg, smoke_model=smoke)
