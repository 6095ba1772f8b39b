"""Time-series forecasting: L1 (the Pathformer recipe) or MSE loss plus the model's
auxiliary loss (Pathformer's balance loss); MSE/MAE on the scaled values.

Models take inputs `[b, T, C]` and return `(forecast [b, horizon, C], aux_loss [])`.
`config.data`: `name` (a series dataset), `horizon`; `config.train.loss`: "l1" | "mse".
"""

import os

import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo import data
from attnzoo.eval.forecasting import forecast_errors
from attnzoo.train_loops.family import Family, model_kwargs, reseed_streams
from attnzoo.zoo.registry import create_model

LOSSES = {"l1": lambda err: jnp.abs(err).mean(), "mse": lambda err: (err**2).mean()}


class TimeSeriesFamily(Family):
    """Batches: `inputs` float32 `[b, T, C]`, `targets` float32 `[b, horizon, C]`."""

    def __init__(self, config, workdir=None):
        super().__init__(config, workdir)
        if config.train.loss not in LOSSES:
            raise ValueError(f"train.loss={config.train.loss!r}; choose one of {', '.join(LOSSES)}")
        if not isinstance(config.data.horizon, int) or config.data.horizon < 1:
            raise ValueError(f"data.horizon={config.data.horizon!r} must be an int >= 1")

    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        info = data.dataset_info(self.config.data.name)
        if info["kind"] != "series":
            raise ValueError(f"data.name={self.config.data.name!r} is not a time series")
        kwargs = dict(
            input_len=info["input_len"], horizon=self.config.data.horizon, channels=info["channels"]
        )
        kwargs.update(model_kwargs(self.config.model))
        return create_model(self.config.model.name, rngs=rngs, **kwargs)

    def loss(self, model, batch, rng):
        reseed_streams(model, rng)  # dropout and the router's gating noise
        loss_name = self.config.train.loss
        pred, aux = model(batch["inputs"])
        err = pred - batch["targets"]
        return LOSSES[loss_name](err) + aux, {
            "aux_loss": aux,
            "mse": (err**2).mean(),
            "mae": jnp.abs(err).mean(),
        }

    def eval_metrics(self, model, batch):
        pred, _ = model(batch["inputs"])
        return forecast_errors(pred, batch["targets"], batch["mask"])

    def make_dataset(self, split: str, *, train: bool, process_index: int, process_count: int):
        config = self.config
        return data.make_window_dataset(
            config.data.name,
            split,
            horizon=config.data.horizon,
            batch_size=config.train.batch_size if train else config.train.eval_batch_size,
            shuffle=train,
            repeat=train,
            seed=config.seed,
            data_dir=config.data.get("data_dir") or None,
            process_index=process_index,
            process_count=process_count,
            drop_remainder=train,
        )

    def sample(self, model, out_dir: str, *, split: str, num: int) -> list[str]:
        """Plots of the forecast against the truth for `num` evenly spaced windows of
        `split`: one PNG per window, one panel per variable (scaled units)."""
        from matplotlib.figure import Figure

        config = self.config
        info = data.dataset_info(config.data.name)
        windows = data.make_window_dataset(
            config.data.name,
            split,
            horizon=config.data.horizon,
            batch_size=1,
            shuffle=False,
            seed=0,
            repeat=False,
            data_dir=config.data.get("data_dir") or None,
            drop_remainder=False,
        )
        total = data.num_windows(config.data.name, split, config.data.horizon)
        chosen = set(np.linspace(0, total - 1, num).astype(int).tolist())
        forecast = nnx.jit(lambda m, x: m(x)[0])  # one compile, not op by op
        paths = []
        for i, batch in enumerate(windows):
            if i not in chosen:
                continue
            pred = np.asarray(forecast(model, batch["inputs"]))[0]  # [H, C]
            inputs, truth = batch["inputs"][0], batch["targets"][0]
            t_in, t_out = len(inputs), len(inputs) + len(truth)
            fig = Figure(figsize=(8, 1.6 * len(info["columns"])))
            axes = fig.subplots(len(info["columns"]), 1, sharex=True, squeeze=False)[:, 0]
            for c, (ax, column) in enumerate(zip(axes, info["columns"])):
                ax.plot(range(t_in), inputs[:, c], color="gray", label="input")
                ax.plot(range(t_in, t_out), truth[:, c], color="black", label="truth")
                ax.plot(range(t_in, t_out), pred[:, c], color="tab:red", label="forecast")
                ax.set_ylabel(column)
            axes[0].legend(loc="upper left", fontsize="small")
            axes[0].set_title(f"{config.data.name} {split} window {i}")
            fig.tight_layout()
            path = os.path.join(out_dir, f"forecast_{i}.png")
            fig.savefig(path, dpi=80)
            paths.append(path)
        return paths


FAMILY = TimeSeriesFamily
