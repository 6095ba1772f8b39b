"""Pretrained weights of the vision models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "vit_tiny.fmnist_p4",
    WeightsConfig(
        model="vit_tiny",
        filename="vit_tiny.fmnist_p4.safetensors",  # 21.4 MB, float32
        sha256="8a13dc32b88534360bbc0aa6e76578fb045b959a2cfd3d8d2dcd2f7c0b59167f",
        # not published yet: `python -m attnzoo.export` of a `vit_tiny_fmnist_p4` run
        # (stopped at step 91 of 160) makes it; put its release URL here once attached
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
        metric={"dataset": "fashion_mnist", "split": "test", "accuracy": 0.6102, "step": 91},
    ),
)
