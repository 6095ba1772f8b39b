"""Pretrained weights of the diffusion models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "dit_tiny.fmnist",
    WeightsConfig(
        model="dit_tiny",
        filename="dit_tiny.fmnist.safetensors",  # 5.1 MB, float32 (the EMA params)
        sha256="b9c8f5d1184ea1b3cea029dc67ecf3f982e4e654ea18b8dd537b1daa3c8f0818",
        # not published yet: `python -m attnzoo.export` of a full `dit_tiny_fmnist` run
        # (2400 steps with Muon, ~23 min on 2 cores; benchmarks/README.md) makes it; put its
        # release URL here once attached
        source="",
        kwargs=dict(
            input_size=32,
            patch_size=4,
            in_channels=1,
            hidden_size=128,
            depth=4,
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
        # 1000 guided samples (DDIM 25 steps, guidance 6) against the test images, features
        # of the zoo's ViT-tiny Fashion-MNIST classifier (`vit_tiny_fmnist`: 88.7% test
        # accuracy, 89.9% on the first 1000 test images)
        metric={
            "dataset": "fashion_mnist",
            "fid_fmnist": 6.67,
            "precision": 0.850,
            "recall": 0.648,
            "class_agreement": 0.884,
            "step": 2400,
        },
    ),
)
