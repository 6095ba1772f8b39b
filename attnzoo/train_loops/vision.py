"""Image classification: softmax cross-entropy (optionally label-smoothed) and accuracy.

Models that select tokens (Select-and-Pack) sow their gate logits and placed tokens; the
loss then reports `kept_fraction` and adds `train.spa_bce_weight` times the BCE of the gate
against a token label map (the batch's `token_labels` `[b, n]`, else the image foreground:
a patch is foreground when most of its pixels exceed the image's minimum).
"""

import math

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from attnzoo import data
from attnzoo.train_loops.family import Family, model_kwargs
from attnzoo.zoo.registry import create_model


def _sown(intermediates: nnx.State, name: str) -> list[jax.Array]:
    """Every value sown under `name`, one per sowing layer."""
    return [
        v
        for path, var in nnx.to_flat_state(intermediates)
        if path[-1] == name
        for v in var.get_value()
    ]


def foreground_token_labels(images: jax.Array, num_tokens: int) -> jax.Array:
    """float `[b, n]`: 1 where most pixels of the token's square patch are above the image's
    minimum (the background of Fashion-MNIST-like images)."""
    b, h, w, _ = images.shape
    p = math.isqrt(h * w // num_tokens)
    if (h // p) * (w // p) != num_tokens:
        raise ValueError(f"cannot tile {h}x{w} images into {num_tokens} square patches")
    low = images.min(axis=(1, 2, 3), keepdims=True)
    fg = (images > low + 1e-3).mean(-1).reshape(b, h // p, p, w // p, p).mean((2, 4))
    return (fg > 0.5).astype(jnp.float32).reshape(b, num_tokens)


class VisionFamily(Family):
    """Batches: `image` float32 `[b, H, W, C]`, `label` int32 `[b]`."""

    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        config = self.config
        info = data.dataset_info(config.data.name)
        height, width, channels = self.image_shape()
        kwargs = dict(
            num_classes=info["num_classes"], image_size=(height, width), in_channels=channels
        )
        kwargs.update(model_kwargs(config.model))
        return create_model(config.model.name, rngs=rngs, **kwargs)

    def loss(self, model, batch, rng):
        rngs = nnx.Rngs(rng)
        forward = nnx.capture(lambda m, x: m(x, rngs=rngs), nnx.Intermediate)
        logits, intermediates = forward(model, batch["image"])  # [b, classes]
        labels = jax.nn.one_hot(batch["label"], logits.shape[-1])
        smoothing = self.config.train.get("label_smoothing", 0.0)
        if smoothing:
            labels = optax.smooth_labels(labels, smoothing)
        loss = optax.softmax_cross_entropy(logits, labels).mean()
        metrics = {"accuracy": (logits.argmax(-1) == batch["label"]).mean()}
        placed = _sown(intermediates, "spa_placed")
        if placed:
            metrics["kept_fraction"] = jnp.mean(jnp.stack(placed).astype(jnp.float32))
            weight = self.config.train.get("spa_bce_weight", 0.0)
            if weight:
                gates = _sown(intermediates, "spa_gate_logits")  # each [b, n]
                n = gates[0].shape[1]
                target = batch.get("token_labels")
                if target is None:
                    target = foreground_token_labels(batch["image"], n)
                bce = jnp.mean(
                    jnp.stack([optax.sigmoid_binary_cross_entropy(g, target) for g in gates])
                )
                metrics["selection_bce"] = bce
                loss = loss + weight * bce
        return loss, metrics

    def eval_metrics(self, model, batch):
        logits, intermediates = nnx.capture(model, nnx.Intermediate)(batch["image"])
        mask = batch["mask"].astype(jnp.float32)  # [b]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = (logits.argmax(-1) == batch["label"]).astype(jnp.float32)
        count = mask.sum()
        out = {"loss": ((nll * mask).sum(), count), "accuracy": ((correct * mask).sum(), count)}
        placed = _sown(intermediates, "spa_placed")
        if placed:
            kept = jnp.stack(placed).astype(jnp.float32).mean((0, 2))  # [b]
            out["kept_fraction"] = ((kept * mask).sum(), count)
        return out


FAMILY = VisionFamily
