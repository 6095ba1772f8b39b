"""Forecasting metrics and naive baselines, on scaled values (the papers' convention).

MSE and MAE average over every forecast value (windows × horizon × variables), as the
official `utils/metrics.py`. Baselines are computed on the same windows by the same code:
* repeat-last: every future step equals the last input step;
* seasonal naive: the last `period` input steps repeated (daily: 24 for hourly data).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def forecast_errors(pred, target, mask) -> dict[str, tuple]:
    """pred, target `[b, H, C]`, mask `[b]` (True: real window) → `{"mse", "mae"}` as
    `(sum, count)` over the masked values (`Family.eval_metrics` convention)."""
    weight = mask.astype(jnp.float32)[:, None, None]
    err = (pred - target).astype(jnp.float32)
    count = weight.sum() * err.shape[1] * err.shape[2]
    return {"mse": ((err**2 * weight).sum(), count), "mae": ((jnp.abs(err) * weight).sum(), count)}


def repeat_last(inputs: np.ndarray, horizon: int) -> np.ndarray:
    """inputs `[b, T, C]` → `[b, horizon, C]`: the last step repeated."""
    return np.repeat(inputs[:, -1:], horizon, axis=1)


def seasonal_naive(inputs: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """inputs `[b, T, C]` → `[b, horizon, C]`: step `h` repeats input step
    `T - period + (h mod period)` (the value one period earlier)."""
    if not 0 < period <= inputs.shape[1]:
        raise ValueError(f"period {period} must be in [1, input length {inputs.shape[1]}]")
    return inputs[:, inputs.shape[1] - period + np.arange(horizon) % period]


def baseline_metrics(batches, horizon: int, period: int) -> dict[str, dict[str, float]]:
    """MSE/MAE of repeat-last and seasonal naive over all windows of `batches` (dicts with
    `inputs` `[b, T, C]`, `targets` `[b, horizon, C]`)."""
    sums = {"repeat_last": [0.0, 0.0], "seasonal_naive": [0.0, 0.0]}
    count = 0
    for batch in batches:
        inputs, targets = batch["inputs"], batch["targets"].astype(np.float64)
        for name, pred in (
            ("repeat_last", repeat_last(inputs, horizon)),
            ("seasonal_naive", seasonal_naive(inputs, horizon, period)),
        ):
            err = pred - targets
            sums[name][0] += float((err**2).sum())
            sums[name][1] += float(np.abs(err).sum())
        count += targets.size
    return {name: {"mse": s / count, "mae": a / count} for name, (s, a) in sums.items()}
