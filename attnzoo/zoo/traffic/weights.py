"""Pretrained weights of the traffic models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "gman.losloop_lap",
    WeightsConfig(
        model="gman",
        filename="gman.losloop_lap.safetensors",  # 2.5 MB, float32 (+ batch-norm counters)
        sha256="f1dd4e1d03c746bee773f2e1d2b05b039c8ff9b2e03dd655eece10929cffdef7",
        # not published yet: `python -m attnzoo.export` of the `gman_losloop_lap` run of
        # benchmarks/traffic.py (215 steps at batch 16, the 20-minute budget; best = last
        # checkpoint) makes it; put its release URL here once attached
        source="",
        # The file's spec also holds the [207, 64] Laplacian spatial embedding
        # (`spatial_embedding`, exact float32): `create_model("gman.losloop_lap",
        # pretrained=True)` needs nothing else; without weights, pass your own embedding.
        kwargs=dict(
            input_len=12,
            horizon=12,
            steps_per_day=288,
            mean=59.37004882139711,  # speed scaler fitted on the training steps (mph)
            std=12.318077675695413,
            num_blocks=3,
            num_heads=8,
            head_dim=8,
            bn_decay_steps=430,
        ),
        input_size=(12, 207),  # 12 five-minute speeds of Los-loop's 207 sensors
        license="Apache-2.0 weights; trained on Los-loop (T-GCN repository data, METR-LA)",
        metric={
            "dataset": "los_loop",
            "split": "test",
            "mae": 4.1522,
            "mae_15min": 3.6375,
            "mae_30min": 4.0518,
            "mae_60min": 5.0323,
            "step": 215,
        },
    ),
)
