"""Traffic forecasting on a sensor graph (GMAN and the linear baseline).

Models take `(inputs [b, P, N] z-scored, time [b, P+Q, 2])` and return the forecast
`[b, Q, N]` in original units. Loss: GMAN's masked MAE (readings equal to 0 excluded).
Eval: masked MAE / MSE / MAPE overall and at 15 / 30 / 60 minutes (`eval/traffic.py`).

`config.data`: `name` (a graph-series dataset), `data_dir`, and `spatial_embedding`:
`method` ("node2vec", "laplacian", "published": GMAN's METR-LA file, or "" for models
without one), `dim`, and node2vec's `p, q, num_walks, walk_length, window, epochs, seed`.
`config.model.graph_mask`: True restricts spatial attention to graph neighbours.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo import data, graph
from attnzoo.data import graph_windows, los_loop, metr_la, paths
from attnzoo.eval.traffic import masked_sums
from attnzoo.train_loops.family import Family, model_kwargs, reseed_streams
from attnzoo.zoo.registry import create_model

EMBEDDINGS = ("node2vec", "laplacian", "published", "")
NODE2VEC_FIELDS = ("p", "q", "num_walks", "walk_length", "window", "epochs", "seed")


def masked_mae(pred, target):
    """GMAN's `mae_loss`: mean |pred - target| over the targets that are not 0."""
    keep = (target != 0).astype(jnp.float32)
    return (jnp.abs(pred - target) * keep).sum() / jnp.maximum(keep.sum(), 1.0)


class TrafficFamily(Family):
    """Batches: `inputs` `[b, P, N]`, `targets` `[b, Q, N]` (raw), `time` `[b, P+Q, 2]`."""

    def __init__(self, config, workdir=None):
        super().__init__(config, workdir)
        method = config.data.spatial_embedding.method
        if method not in EMBEDDINGS:
            raise ValueError(
                f"data.spatial_embedding.method={method!r}; choose one of "
                f"{', '.join(repr(m) for m in EMBEDDINGS)}"
            )
        dim = config.data.spatial_embedding.get("dim", 1)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"data.spatial_embedding.dim={dim!r} must be an int >= 1")

    def _data_dir(self):
        return self.config.data.get("data_dir") or None

    def adjacency(self) -> np.ndarray:
        """The dataset's weighted adjacency `[N, N]`."""
        if self.config.data.name != "los_loop":
            raise ValueError(f"data.name={self.config.data.name!r}: no adjacency reader")
        return los_loop.load_adjacency(self._data_dir())

    def spatial_embedding(self) -> np.ndarray:
        """`[N, dim]` of `config.data.spatial_embedding` (computed once per graph, cached
        under `$ATTNZOO_CACHE/spatial_embeddings`)."""
        cfg = self.config.data.spatial_embedding
        if cfg.method == "published":
            return metr_la.load_published_embedding(self._data_dir())
        params = {k: cfg[k] for k in NODE2VEC_FIELDS} if cfg.method == "node2vec" else {}
        with jax.ensure_compile_time_eval():  # build_model runs under jit; train eagerly
            return graph.spatial_embedding(
                self.adjacency(),
                cfg.method,
                dim=cfg.dim,
                cache_dir=paths.cache_root() / "spatial_embeddings",
                **params,
            )

    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        name = self.config.data.name
        info = data.dataset_info(name)
        if info["kind"] != "graph_series":
            raise ValueError(f"data.name={name!r} is not a sensor-graph series")
        mean, std = graph_windows.fit_scalar_scaler(name, data_dir=self._data_dir())
        kwargs = dict(input_len=info["input_len"], horizon=info["horizon"], mean=mean, std=std)
        if self.config.data.spatial_embedding.method:
            kwargs.update(spatial_embedding=self.spatial_embedding(), steps_per_day=info["period"])
        kwargs.update(model_kwargs(self.config.model))
        if kwargs.pop("graph_mask", False):
            kwargs["adjacency"] = self.adjacency()
        return create_model(self.config.model.name, rngs=rngs, **kwargs)

    def loss(self, model, batch, rng):
        reseed_streams(model, rng)  # the output dropout
        pred = model(batch["inputs"], batch["time"])
        loss = masked_mae(pred, batch["targets"])
        return loss, {"mae": loss}

    def eval_metrics(self, model, batch):
        pred = model(batch["inputs"], batch["time"])
        return masked_sums(pred, batch["targets"], batch["mask"])

    def make_dataset(self, split: str, *, train: bool, process_index: int, process_count: int):
        config = self.config
        return graph_windows.make_graph_window_dataset(
            config.data.name,
            split,
            batch_size=config.train.batch_size if train else config.train.eval_batch_size,
            shuffle=train,
            repeat=train,
            seed=config.seed,
            data_dir=self._data_dir(),
            process_index=process_index,
            process_count=process_count,
            drop_remainder=train,
        )

    def sample(self, model, out_dir: str, *, split: str, num: int) -> list[str]:
        """One PNG per sensor for `num` evenly spaced sensors: the forecasts 15 and 60
        minutes ahead against the true speed over the whole `split` (needs horizon 12)."""
        from matplotlib.figure import Figure

        source = graph_windows.window_source(
            self.config.data.name, split, data_dir=self._data_dir()
        )
        forecast = nnx.jit(lambda m, x, t: m(x, t))
        preds, truth = [], []
        for start in range(0, len(source), 64):
            batch = [source[i] for i in range(start, min(start + 64, len(source)))]
            inputs = np.stack([b["inputs"] for b in batch])
            time = np.stack([b["time"] for b in batch])
            preds.append(np.asarray(forecast(model, inputs, time)))
            truth.append(np.stack([b["targets"] for b in batch]))
        pred, true = np.concatenate(preds), np.concatenate(truth)  # [W, Q, N]
        paths_out = []
        for sensor in np.linspace(0, pred.shape[2] - 1, num).astype(int):
            fig = Figure(figsize=(9, 2.6))
            ax = fig.subplots()
            steps = np.arange(len(pred))  # x: the forecast step, counted from window 0's first
            ax.plot(steps, true[:, 0, sensor], color="black", label="true")
            ax.plot(steps + 2, pred[:, 2, sensor], color="tab:blue", label="forecast 15 min")
            ax.plot(steps + 11, pred[:, 11, sensor], color="tab:red", label="forecast 60 min")
            ax.set(xlabel="5-minute step", ylabel="speed", title=f"{split} sensor {sensor}")
            ax.legend(loc="lower left", fontsize="small")
            fig.tight_layout()
            path = os.path.join(out_dir, f"sensor_{sensor}.png")
            fig.savefig(path, dpi=80)
            paths_out.append(path)
        return paths_out


FAMILY = TrafficFamily
