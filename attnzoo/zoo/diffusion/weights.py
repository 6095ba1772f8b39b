"""Pretrained weights of the diffusion models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "dit_tiny.fmnist",
    WeightsConfig(
        model="dit_tiny",
        filename="dit_tiny.fmnist.safetensors",  # 5.1 MB, float32 (the EMA params)
        sha256="e2f55fc238cd5c7eb324b39438f44f97c5362afb5a8c409d6568baa9f54af220",
        # not published yet: `python -m attnzoo.export` of a full `dit_tiny_fmnist` run
        # (3600 steps, ~30 min on 2 cores; benchmarks/README.md) makes it; put its release
        # URL here once attached
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
        # of the zoo's ViT-tiny Fashion-MNIST classifier (88.5% test accuracy)
        metric={
            "dataset": "fashion_mnist",
            "fid_fmnist": 21.1,
            "precision": 0.774,
            "recall": 0.776,
            "class_agreement": 0.701,
            "step": 3600,
        },
    ),
)
