"""Gaze scanpaths: point-process NLL per fixation; sampling draws predicted scanpaths.

Models give `nll(images [b, S, S, 3], fixations [b, L, 3], valid [b, L]) -> (terms,
weight)`: per-step NLL terms `{name: [b, T]}` (the loss is `terms["nll"]`) averaged with
`weight [b, T]`; and `sample(images, key, budget_ms=, max_len=) -> (fixations, valid)`.
`config.data.name`: a scanpath dataset; `config.sample.beam_size > 0` decodes by beam
search instead (models with `beam_search`, e.g. OAT); `config.sample.temperature` (default
1) sharpens (< 1) or flattens (> 1) the sampled distributions; `config.data.mirror`
mirrors half the training scanpaths left–right (image and x).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo import data
from attnzoo.data.scanpaths import (
    human_scanpaths,
    load_split,
    make_scanpath_dataset,
    normalize_images,
)
from attnzoo.eval.scanpath_baselines import viewing_budget_ms
from attnzoo.train_loops.family import Family, model_kwargs, reseed_streams
from attnzoo.zoo.registry import create_model


def nll_sums(model, batch: dict, example_mask: jax.Array) -> dict[str, tuple]:
    """The model's NLL terms as `(sum, count)` over the weighted steps of the examples
    where `example_mask [b]` is True."""
    terms, weight = model.nll(batch["image"], batch["fixations"], batch["valid"])
    weight = (weight & example_mask[:, None]).astype(jnp.float32)
    return {name: ((value * weight).sum(), weight.sum()) for name, value in terms.items()}


def check_temperature(temperature) -> float:
    """`temperature` if it is a number > 0, else a one-line ValueError."""
    number = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if not number or not temperature > 0:
        raise ValueError(f"sampling temperature {temperature!r} must be a number > 0")
    return float(temperature)


class GazeFamily(Family):
    """Batches: see `attnzoo.data.scanpaths` (`image`, `fixations`, `valid`, ...)."""

    def __init__(self, config, workdir=None):
        super().__init__(config, workdir)
        beam = config.get("sample", {}).get("beam_size", 0)
        if isinstance(beam, bool) or not isinstance(beam, int) or beam < 0:
            raise ValueError(f"sample.beam_size={beam!r} must be an int >= 0 (0: sampling)")
        check_temperature(config.get("sample", {}).get("temperature", 1.0))
        if not isinstance(config.data.get("mirror", False), bool):
            raise ValueError(f"data.mirror={config.data.get('mirror')!r} must be True or False")

    def _records(self, split: str) -> dict:
        return load_split(
            self.config.data.name, split, data_dir=self.config.data.get("data_dir") or None
        )

    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        info = data.dataset_info(self.config.data.name)
        if info["kind"] != "scanpath":
            raise ValueError(f"data.name={self.config.data.name!r} is not a scanpath dataset")
        kwargs = dict(image_size=info["image_size"], **model_kwargs(self.config.model))
        return create_model(self.config.model.name, rngs=rngs, **kwargs)

    def loss(self, model, batch, rng):
        reseed_streams(model, rng)  # dropout
        sums = nll_sums(model, batch, jnp.ones(batch["valid"].shape[0], bool))
        mean = {k: s / jnp.maximum(c, 1.0) for k, (s, c) in sums.items()}
        return mean.pop("nll"), mean

    def eval_metrics(self, model, batch):
        return nll_sums(model, batch, batch["mask"])

    def make_dataset(self, split: str, *, train: bool, process_index: int, process_count: int):
        config = self.config
        return make_scanpath_dataset(
            config.data.name,
            split,
            batch_size=config.train.batch_size if train else config.train.eval_batch_size,
            shuffle=train,
            repeat=train,
            seed=config.seed,
            data_dir=config.data.get("data_dir") or None,
            process_index=process_index,
            process_count=process_count,
            drop_remainder=train,
            mirror_half=train and config.data.get("mirror", False),
        )

    def predict(
        self, model, images: np.ndarray, seed: int, temperature: float | None = None
    ) -> list[np.ndarray]:
        """One predicted scanpath per uint8 image `[n, S, S, 3]`: `[k, 3]` `(x, y, ms)` in
        [0, 1] image-side units, sampled with the training fixation-time budget at
        `temperature` (default: `config.sample.temperature`), or the best of a beam search."""
        info = data.dataset_info(self.config.data.name)
        budget = viewing_budget_ms(self._records(self.config.data.train_split))
        sample_config = self.config.get("sample", {})
        beam = sample_config.get("beam_size", 0)
        if temperature is None:
            temperature = sample_config.get("temperature", 1.0)
        temperature = check_temperature(temperature)
        if beam and not hasattr(model, "beam_search"):
            raise ValueError(
                f"sample.beam_size={beam}: {self.config.model.name} has no beam search"
            )
        if beam:
            draw = nnx.jit(
                lambda m, x, k: m.beam_search(x, beam_size=beam, max_len=info["max_len"])
            )
        else:
            draw = nnx.jit(
                lambda m, x, k: m.sample(
                    x, k, budget_ms=budget, max_len=info["max_len"], temperature=temperature
                )
            )
        fixations, valid = draw(model, normalize_images(images), jax.random.key(seed))
        return [f[v] for f, v in zip(np.asarray(fixations), np.asarray(valid))]

    def sample(
        self, model, out_dir: str, *, split: str, num: int, temperature: float | None = None
    ) -> list[str]:
        """For the first `num` images of `split`: a PNG of a predicted scanpath (drawn at
        `temperature`, default `config.sample.temperature`) beside the human ones, and
        `scanpaths_<image>.json` (predicted, in original image pixels)."""
        from matplotlib.figure import Figure

        records = self._records(split)
        num = min(num, len(records["index"]))
        predicted = self.predict(model, records["image"][:num], self.config.seed, temperature)
        paths = []
        for i, path in enumerate(predicted):
            height, width = records["size"][i]
            longer = max(height, width)
            image_no = int(records["index"][i]) + 1
            pixels = path * [longer, longer, 1.0]
            fig = Figure(figsize=(8, 4))
            for ax, title, paths_px in zip(
                fig.subplots(1, 2),
                ("predicted", "human"),
                ([pixels], human_scanpaths(records, i)),
            ):
                ax.imshow(records["image"][i], extent=(0, longer, longer, 0))
                for p in paths_px:
                    ax.plot(p[:, 0], p[:, 1], "-o", ms=3, lw=1, alpha=0.8)
                ax.set(xlim=(0, width), ylim=(height, 0), title=f"{title}, image {image_no}")
                ax.axis("off")
            png = os.path.join(out_dir, f"scanpath_{image_no:03d}.png")
            fig.savefig(png, dpi=80)
            js = os.path.join(out_dir, f"scanpath_{image_no:03d}.json")
            with open(js, "w") as f:
                json.dump({"image": image_no, "xy_ms": pixels.round(2).tolist()}, f)
            paths += [png, js]
        return paths


FAMILY = GazeFamily
