"""Pretrained weights of the gaze scanpath models (see `attnzoo.zoo.weights`).

Both are the CPU-size runs behind benchmarks/README.md's NUS table (the commands are
there); not published yet: `python -m attnzoo.export` of those runs makes them; put their
release URLs here once attached. Inputs: 128x128 RGB, `(pixel / 255 - 0.5) / 0.25`
(`attnzoo.data.scanpaths`).
"""

from attnzoo.zoo.weights import WeightsConfig, register_weights

NUS = dict(
    input_size=(128, 128, 3),
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    license="Apache-2.0 weights; trained on NUS scene (MIT licence, NUS VIP lab)",
)

register_weights(
    "tppgaze.nus_small",
    WeightsConfig(
        model="tppgaze",
        filename="tppgaze.nus_small.safetensors",  # 1.6 MB, float32
        sha256="e58cd5589c9ba1d6c39dae01b7a95b9a37dc631ef45d4aff335883cd3a876fb3",
        kwargs=dict(
            image_size=128,
            patch_size=16,
            backbone_width=64,
            backbone_depth=2,
            backbone_heads=2,
            feature_channels=32,
            d_model=64,
            num_layers=2,
            num_heads=4,
            mlp_dim=128,
            position_components=16,
            duration_components=4,
            dropout=0.0,
        ),
        **NUS,
        # test NLL from `attnzoo.train`; ScanMatch with 10 scanpaths per test image at the
        # validation-chosen temperature 0.35 (benchmarks/gaze.py)
        metric={"dataset": "nus_scene", "split": "test", "nll": -1.6624, "scanmatch": 0.341},
    ),
)

register_weights(
    "oat.nus_small",
    WeightsConfig(
        model="oat",
        filename="oat.nus_small.safetensors",  # 2.5 MB, float32
        sha256="925b3551cf222763d65b88cd2726b1f5836ad09d06d5d919c3155bd56f160e08",
        kwargs=dict(
            image_size=128,
            patch_size=16,
            width=96,
            encoder_depth=2,
            decoder_depth=2,
            num_heads=3,
            mlp_dim=384,
            fixation_ms=300.0,
            dropout=0.1,
        ),
        **NUS,
        metric={"dataset": "nus_scene", "split": "test", "nll": 3.0610, "scanmatch": 0.317},
    ),
)
