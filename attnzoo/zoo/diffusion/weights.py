"""Pretrained weights of the diffusion models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "dit_tiny.fmnist",
    WeightsConfig(
        model="dit_tiny",
        filename="dit_tiny.fmnist.safetensors",  # 0.74 MB, float32 (the EMA params)
        sha256="4fd8d63ecf6bc60dc6e660b21187eab1e71e46b2733cc458637ccfae75ee205a",
        # not published yet: `python -m attnzoo.export` of the `dit_tiny_fmnist` run of
        # `benchmarks/diffusion.py --part quality --dit-steps 6000` (benchmarks/README.md)
        # makes it; put its release URL here once attached
        source="",
        kwargs=dict(
            input_size=32,
            patch_size=4,
            in_channels=1,
            hidden_size=64,
            depth=2,
            num_heads=4,
            num_classes=10,
            class_dropout_prob=0.1,
            learn_sigma=False,
        ),
        input_size=(32, 32, 1),  # Fashion-MNIST zero-padded 28 -> 32, pixels in [-1, 1]
        mean=(0.5,),
        std=(0.5,),
        num_classes=10,
        license="Apache-2.0 weights; trained on Fashion-MNIST (MIT, Zalando Research)",
        # 1000 guided samples (DDIM 25 steps, guidance 4) against the test images, features
        # of the zoo's ViT-tiny Fashion-MNIST classifier (88.5% test accuracy)
        metric={
            "dataset": "fashion_mnist",
            "fid_fmnist": 39.4,
            "precision": 0.747,
            "recall": 0.657,
            "class_agreement": 0.611,
            "step": 6000,
        },
    ),
)
