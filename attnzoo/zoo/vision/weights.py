"""Pretrained weights of the vision models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "vit_tiny.fmnist_p4",
    WeightsConfig(
        model="vit_tiny",
        filename="vit_tiny.fmnist_p4.safetensors",  # 21.4 MB, float32
        sha256="47ede69bfa00f8a7373bcde1c77c8a4af047d0dc8bee2ddadb3d92f4c112f59a",
        # not published yet: `python -m attnzoo.export` of a full `vit_tiny_fmnist_p4` run
        # (600 steps, 24.5 min on 2 CPU cores) makes it; put its release URL here once attached
        source="",
        kwargs=dict(
            num_classes=10,
            image_size=[28, 28],
            in_channels=1,
            patch_size=4,
            width=192,
            depth=12,
            num_heads=3,
            mlp_dim=768,
            pool="gap",
            posemb="learn",
            dropout=0.0,
        ),
        input_size=(28, 28, 1),
        mean=(0.2860,),  # of pixels / 255 (attnzoo.data.fashion_mnist)
        std=(0.3530,),
        num_classes=10,
        classifier=r"^head/",
        license="Apache-2.0 weights; trained on Fashion-MNIST (MIT, Zalando Research)",
        metric={"dataset": "fashion_mnist", "split": "test", "accuracy": 0.8045, "step": 600},
    ),
)
