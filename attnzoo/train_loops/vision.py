"""Image classification: softmax cross-entropy (optionally label-smoothed) and accuracy."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attnzoo import data
from attnzoo.train_loops.family import Family, model_kwargs
from attnzoo.zoo.registry import create_model


class VisionFamily(Family):
    """Batches: `image` float32 `[b, H, W, C]`, `label` int32 `[b]`."""

    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        config = self.config
        info = data.dataset_info(config.data.name)
        height, width, channels = info["image_shape"]
        kwargs = dict(
            num_classes=info["num_classes"], image_size=(height, width), in_channels=channels
        )
        kwargs.update(model_kwargs(config.model))
        return create_model(config.model.name, rngs=rngs, **kwargs)

    def loss(self, model, batch):
        logits = model(batch["image"])  # [b, classes]
        labels = jax.nn.one_hot(batch["label"], logits.shape[-1])
        smoothing = self.config.train.get("label_smoothing", 0.0)
        if smoothing:
            labels = optax.smooth_labels(labels, smoothing)
        loss = optax.softmax_cross_entropy(logits, labels).mean()
        accuracy = (logits.argmax(-1) == batch["label"]).mean()
        return loss, {"accuracy": accuracy}

    def eval_metrics(self, model, batch):
        logits = model(batch["image"])
        mask = batch["mask"].astype(jnp.float32)  # [b]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = (logits.argmax(-1) == batch["label"]).astype(jnp.float32)
        count = mask.sum()
        return {"loss": ((nll * mask).sum(), count), "accuracy": ((correct * mask).sum(), count)}


FAMILY = VisionFamily
