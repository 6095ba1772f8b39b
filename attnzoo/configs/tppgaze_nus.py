"""TPP-Gaze on NUS scene scanpaths (400 train / 50 val / 50 test images × 12 viewers).

    python -m attnzoo.train --config=tppgaze_nus --workdir=runs/tppgaze_nus
    python -m attnzoo.sample --workdir=runs/tppgaze_nus --num=8
    python benchmarks/gaze.py --tppgaze=runs/tppgaze_nus --out=gaze.json

ViT (4 layers, width 192, 16-px patches on 128² images) + CoordConv image branch, 4-layer
causal transformer (256, 4 heads) + LSTM history, 4 log-normal / 16 Gaussian components
(the official sizes). AdamW 3e-4, warmup + cosine, 30 epochs of batch 64 (~4.3k train
scanpaths), best checkpoint by validation NLL. Needs an accelerator for the full run
(hours on 2 CPU cores); benchmarks/README.md has what was measured.
"""

from attnzoo.configs._gaze import gaze_config

SMOKE_TPP = dict(
    patch_size=32,
    backbone_width=16,
    backbone_depth=1,
    backbone_heads=2,
    feature_channels=4,
    d_model=16,
    num_layers=1,
    num_heads=2,
    mlp_dim=32,
    position_components=4,
)


def get_config(arg: str | None = None):
    model = dict(
        name="tppgaze",
        patch_size=16,
        backbone_width=192,
        backbone_depth=4,
        backbone_heads=3,
        feature_channels=32,
        d_model=256,
        num_layers=4,
        num_heads=4,
        mlp_dim=1024,
        duration_components=4,
        position_components=16,
        dropout=0.1,
    )
    return gaze_config("tppgaze_nus", arg, model, SMOKE_TPP)
