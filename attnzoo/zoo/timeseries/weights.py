"""Pretrained weights of the time-series models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "pathformer.etth1_96",
    WeightsConfig(
        model="pathformer",
        filename="pathformer.etth1_96.safetensors",  # 1.7 MB, float32
        sha256="a9a1026ff0f1aea7406f7ac02be1e27b558c32c625f8fbfd79cc30f05fb31302",
        # not published yet: `python -m attnzoo.export` of a `pathformer_etth1_96` run (the
        # best checkpoint, step 1782 of 1980; benchmarks/README.md) makes it; put its
        # release URL here once attached
        source="",
        kwargs=dict(
            input_len=96,
            horizon=96,
            channels=7,
            d_model=4,
            d_ff=64,
            patch_sizes=[[16, 12, 8, 32], [12, 8, 6, 4], [8, 6, 4, 2]],
            k=3,
            residual=True,
            revin=True,
        ),
        input_size=(96, 7),  # 96 hourly steps of ETT's 7 variables, z-scored on train months
        classifier=r"^head/",  # Linear(T·d → horizon): reset for another horizon
        license="Apache-2.0 weights; trained on ETTh1 (CC BY-ND 4.0, ETDataset)",
        metric={"dataset": "etth1", "split": "test", "mse": 0.3885, "mae": 0.3904, "step": 1782},
    ),
)
