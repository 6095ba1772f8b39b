"""TPP-Gaze (phuselab/tppgaze): a scanpath as a marked neural temporal point process.

Image branch: the zoo ViT's patch tokens `[b, g, g, width]` + CoordConv (two channels of
x, y in [-1, 1]) → 1×1 conv to `feature_channels` → flatten → Linear to `d_model`.
History branch: each earlier fixation as `[normalised log duration, x, y]` → Linear →
causal transformer (`num_layers` pre-norm blocks, `attend` with a `Causal` mask) → LSTM;
the sequence is shifted right behind a learned start token, so step `t` sees fixations
`< t` only. `concat(history, image)` → MLP → a log-normal mixture of the duration
(`duration_components`, seconds) and a 2-D Gaussian mixture of the position
(`position_components`, tanh-squashed means, axis-aligned σ) of fixation `t`.
Training minimises the point-process NLL `−Σ_t [log p(d_t | H_t) + log p(x_t, y_t | H_t)]`;
sampling draws fixations autoregressively until the viewing time is used up.

Differences from the official code (stated, not hidden): a ViT backbone trained with the
model instead of a frozen CNN; durations are the events' inter-times (saccade time is not
modelled) and the last fixation counts as observed (no survival term for the cut-off).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.masks import Causal
from attnzoo.layers.mlp import dense
from attnzoo.layers.norms import layer_norm
from attnzoo.zoo.gaze import mixtures
from attnzoo.zoo.registry import register
from attnzoo.zoo.vision.vit import EncoderBlock, ViT

LOG_DURATION_MEAN, LOG_DURATION_STD = -1.4, 0.6  # log seconds: ≈ 250 ms fixations


def duration_bias(key, shape, dtype=jnp.float32):
    """Initial (logits 0, μ spread over ±1.5 std of log-durations, σ = 0.5) of `3K`."""
    k = shape[0] // 3
    mu = LOG_DURATION_MEAN + LOG_DURATION_STD * jnp.linspace(-1.5, 1.5, k)
    return jnp.concatenate([jnp.zeros(k), mu, jnp.full(k, jnp.log(0.5))]).astype(dtype)


def position_bias(key, shape, dtype=jnp.float32):
    """Initial (logits 0, means on a √K × √K grid, σ = 0.15) of `5K` (K a square, else
    means on the diagonal)."""
    k = shape[0] // 5
    side = int(round(k**0.5))
    if side * side == k:
        centres = (jnp.stack(jnp.divmod(jnp.arange(k), side), -1)[:, ::-1] + 0.5) / side
    else:
        centres = jnp.repeat(((jnp.arange(k) + 0.5) / k)[:, None], 2, 1)
    means = jnp.arctanh(2 * centres - 1).ravel()  # tanh(raw) maps back to the centre
    return jnp.concatenate([jnp.zeros(k), means, jnp.full(2 * k, jnp.log(0.15))]).astype(dtype)


class TPPGaze(nnx.Module):
    """Images `[b, S, S, 3]`, fixations `[b, L, 3]` `(x, y, duration_ms)` → mixture
    parameters of every fixation given the ones before it."""

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int = 16,
        backbone_width: int = 192,
        backbone_depth: int = 4,
        backbone_heads: int = 3,
        feature_channels: int = 32,
        d_model: int = 256,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_dim: int = 1024,
        duration_components: int = 4,
        position_components: int = 16,
        dropout: float = 0.0,
        attention_impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        for name, value in dict(
            duration_components=duration_components,
            position_components=position_components,
            feature_channels=feature_channels,
            num_layers=num_layers,
        ).items():
            if value < 1:
                raise ValueError(f"{name}={value} must be >= 1")
        self.backbone = ViT(
            num_classes=0,
            image_size=(image_size, image_size),
            patch_size=patch_size,
            width=backbone_width,
            depth=backbone_depth,
            num_heads=backbone_heads,
            mlp_dim=4 * backbone_width,
            pool="gap",
            dropout=dropout,
            attention_impl=attention_impl,
            rngs=rngs,
        )
        grid = image_size // patch_size
        self.coord_conv = dense(backbone_width + 2, feature_channels, ("embed", None), rngs=rngs)
        self.image_proj = dense(grid * grid * feature_channels, d_model, (None, "embed"), rngs=rngs)
        self.fixation_embed = dense(3, d_model, (None, "embed"), rngs=rngs)
        # Not zeros: the blocks' LayerNorm of a constant token has a 1/√eps gradient.
        self.start = nnx.Param(jax.random.normal(rngs.params(), (1, 1, d_model)))
        self.blocks = nnx.List(
            [
                EncoderBlock(
                    d_model,
                    num_heads,
                    mlp_dim,
                    dropout=dropout,
                    attention_impl=attention_impl,
                    record_weights=False,
                    dtype=jnp.float32,
                    rngs=rngs,
                )
                for _ in range(num_layers)
            ]
        )
        self.norm = layer_norm(d_model, rngs=rngs)
        self.lstm = nnx.OptimizedLSTMCell(d_model, d_model, rngs=rngs)
        self.hidden = dense(2 * d_model, d_model, (None, "embed"), rngs=rngs)
        small = nnx.initializers.normal(0.01)
        self.duration_head = dense(
            d_model,
            3 * duration_components,
            ("embed", None),
            kernel_init=small,
            bias_init=duration_bias,
            rngs=rngs,
        )
        self.position_head = dense(
            d_model,
            5 * position_components,
            ("embed", None),
            kernel_init=small,
            bias_init=position_bias,
            rngs=rngs,
        )

    def encode_image(self, images: jax.Array) -> jax.Array:
        """`[b, S, S, 3]` → `[b, d_model]`."""
        tokens = self.backbone.tokens(images)  # [b, g*g, width]
        b, n, _ = tokens.shape
        g = int(round(n**0.5))
        axis = jnp.linspace(-1.0, 1.0, g)
        ys, xs = jnp.meshgrid(axis, axis, indexing="ij")
        coords = jnp.broadcast_to(jnp.stack([xs, ys], -1).reshape(1, n, 2), (b, n, 2))
        features = nnx.relu(self.coord_conv(jnp.concatenate([tokens, coords], -1)))
        return self.image_proj(features.reshape(b, -1))  # [b, d]

    def history(self, fixations: jax.Array) -> jax.Array:
        """`[b, L, 3]` → `[b, L, d_model]`; row `t` depends on fixations `< t` only."""
        log_d = jnp.log(jnp.maximum(fixations[..., 2], 1.0) / 1000.0)
        inputs = jnp.stack(
            [(log_d - LOG_DURATION_MEAN) / LOG_DURATION_STD, fixations[..., 0], fixations[..., 1]],
            -1,
        )
        x = self.fixation_embed(inputs)  # [b, L, d]
        b, _, d = x.shape
        x = jnp.concatenate([jnp.broadcast_to(self.start[...], (b, 1, d)), x[:, :-1]], 1)
        for block in self.blocks:
            x = block(x, mask=Causal())
        zeros = jnp.zeros((b, d), x.dtype)
        # A plain lax.scan over the cell (not nnx.RNN): it nests inside `sample`'s loop.
        _, h = jax.lax.scan(
            lambda c, x_t: self.lstm(c, x_t), (zeros, zeros), self.norm(x).swapaxes(0, 1)
        )
        return h.swapaxes(0, 1)  # [b, L, d]

    def __call__(self, images: jax.Array, fixations: jax.Array) -> jax.Array:
        """Mixture parameters `[b, L, 3K_d + 5K_p]` (duration's, then position's) of every
        fixation."""
        image = self.encode_image(images)[:, None]  # [b, 1, d]
        h = self.history(fixations)
        h = nnx.gelu(self.hidden(jnp.concatenate([h, jnp.broadcast_to(image, h.shape)], -1)))
        return jnp.concatenate([self.duration_head(h), self.position_head(h)], -1)

    def nll(self, images, fixations, valid) -> tuple[dict, jax.Array]:
        """Per-fixation point-process NLL `{"nll", "duration_nll", "position_nll"}`, each
        `[b, L]` (duration density in 1/s, position density in 1/image-side²), and its
        weight `valid [b, L]`."""
        params = self(images, fixations)
        duration_params, position_params = jnp.split(params, [self.duration_head.out_features], -1)
        seconds = jnp.maximum(fixations[..., 2], 1.0) / 1000.0
        log_d = mixtures.lognormal_mixture_logpdf(duration_params, seconds)
        log_p = mixtures.gaussian2d_mixture_logpdf(position_params, fixations[..., :2])
        terms = {"nll": -(log_d + log_p), "duration_nll": -log_d, "position_nll": -log_p}
        return terms, valid

    def sample(
        self, images, key: jax.Array, *, budget_ms: float, max_len: int, temperature: float = 1.0
    ):
        """Scanpaths `[b, max_len, 3]` `(x, y, duration_ms)` and `valid [b, max_len]`:
        fixations drawn one at a time, each given the ones before it, from the mixtures at
        `temperature` (`mixtures.sample_*`); fixation `t` is valid while the time of the
        fixations before it is < `budget_ms`."""
        b = images.shape[0]
        image = self.encode_image(images)[:, None]
        fixations = jnp.zeros((b, max_len, 3)).at[..., 2].set(250.0)

        def step(t, carry):
            fixations, key = carry
            key, k_d, k_p = jax.random.split(key, 3)
            h = self.history(fixations)[:, t]  # only fixations < t are read
            h = nnx.gelu(self.hidden(jnp.concatenate([h, image[:, 0]], -1)))
            seconds = mixtures.sample_lognormal_mixture(k_d, self.duration_head(h), temperature)
            xy = mixtures.sample_gaussian2d_mixture(k_p, self.position_head(h), temperature)
            d = jnp.clip(seconds * 1000.0, 1.0, budget_ms)
            new = jnp.concatenate([jnp.clip(xy, 0, 1), d[:, None]], -1)
            return fixations.at[:, t].set(new), key

        fixations, _ = jax.lax.fori_loop(0, max_len, step, (fixations, key))
        elapsed_before = jnp.cumsum(fixations[..., 2], -1) - fixations[..., 2]
        return fixations, elapsed_before < budget_ms


@register("tppgaze")
def tppgaze(*, rngs: nnx.Rngs, **kwargs) -> TPPGaze:
    """TPP-Gaze: ViT + CoordConv image branch, causal transformer + LSTM history, mixture
    heads (4 log-normal duration, 16 Gaussian position components); kwargs to `TPPGaze`."""
    return TPPGaze(rngs=rngs, **kwargs)
