"""Pretrained weights of the language models (see `attnzoo.zoo.weights`)."""

from attnzoo.zoo.weights import WeightsConfig, register_weights

register_weights(
    "lm_tiny.shakespeare",
    WeightsConfig(
        model="lm_tiny",
        filename="lm_tiny.shakespeare.safetensors",  # 3.0 MB, float32
        sha256="3a87088b15552927cb5770d4444daaa4a0a6b81436edee8a95e64e83f6208362",
        # not published yet: `python -m attnzoo.export` of an `lm_tiny_shakespeare` run
        # (its last checkpoint, step 2000; the validation loss was lowest at step 1500,
        # 1.538) makes it; put its release URL here once attached
        source="",
        kwargs=dict(
            vocab_size=256,
            max_length=256,
            width=128,
            depth=4,
            num_heads=4,
            num_kv_heads=2,
            attention="dense",
            mlp="swiglu",
            mlp_dim=344,
            tie_embeddings=True,
        ),
        input_size=(256,),  # bytes of context (RoPE: longer inputs run, untrained there)
        license="Apache-2.0 weights; trained on tiny-shakespeare (public domain text)",
        metric={
            "dataset": "tinyshakespeare",
            "split": "val",
            "loss": 1.5690,
            "bits_per_byte": 2.2636,
            "step": 2000,
        },
    ),
)
