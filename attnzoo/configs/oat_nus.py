"""OAT-style region decoder on NUS scene scanpaths (8 × 8 regions of 128² images).

    python -m attnzoo.train --config=oat_nus --workdir=runs/oat_nus
    python -m attnzoo.sample --workdir=runs/oat_nus --num=8 \
        [--config=oat_nus --config.sample.beam_size=4]
    python benchmarks/gaze.py --oat=runs/oat_nus --out=gaze.json

ViT encoder (4 layers, width 192, 16-px patches → 64 region tokens + an end token), a
2-layer decoder (causal self-attention, cross-attention to the regions), pointer logits,
cross-entropy. AdamW 3e-4, warmup + cosine, 30 epochs of batch 64, best checkpoint by
validation NLL; sampling by default, beam search with `sample.beam_size > 0`. Needs an
accelerator for the full run; benchmarks/README.md has what was measured.
"""

from attnzoo.configs._gaze import gaze_config

SMOKE_OAT = dict(patch_size=32, width=16, encoder_depth=1, decoder_depth=1, num_heads=2, mlp_dim=32)


def get_config(arg: str | None = None):
    model = dict(
        name="oat",
        patch_size=16,
        width=192,
        encoder_depth=4,
        decoder_depth=2,
        num_heads=3,
        mlp_dim=768,
        fixation_ms=300.0,
        dropout=0.1,
    )
    return gaze_config("oat_nus", arg, model, SMOKE_OAT)
