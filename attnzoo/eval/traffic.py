"""Traffic metrics and baselines, in the data's original units (GMAN `utils.metric`).

Masked metrics ignore readings equal to 0 (missing): over the kept values,
MAE = mean |ŷ - y|, RMSE = sqrt(mean (ŷ - y)²), MAPE = 100 · mean |ŷ - y| / y, reported at
horizons 3 / 6 / 12 steps (15 / 30 / 60 minutes of 5-minute data), each the error of that
single forecast step (as GMAN reports them). Baselines, on the same windows by the same code:
* last value: every future step equals the last input reading;
* historical average: the mean reading of each sensor at the same time of day over the
  training days (zeros excluded).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

HORIZONS = {"15min": 3, "30min": 6, "60min": 12}


def masked_sums(pred, target, windows=None) -> dict[str, tuple]:
    """pred, target `[b, Q, N]` (original units), windows `[b]` bool (True: real window; None:
    all) → `(sum, count)` of `mae`/`mse`/`mape` over every step and per horizon
    (`mae_15min`...), the `Family.eval_metrics` convention. Works on numpy or jax arrays."""
    xp = np if isinstance(pred, np.ndarray) else jnp
    keep = target != 0
    if windows is not None:
        keep = keep & windows[:, None, None]
    weight = keep.astype(xp.float32)
    err = xp.abs(pred - target) * weight
    safe = xp.where(keep, target, 1.0)
    parts = {"mae": err, "mse": err**2, "mape": 100 * err / xp.abs(safe)}
    out = {}
    for name, values in parts.items():
        out[name] = (values.sum(), weight.sum())
        for label, h in HORIZONS.items():
            if h <= pred.shape[1]:
                out[f"{name}_{label}"] = (values[:, h - 1].sum(), weight[:, h - 1].sum())
    return out


def summarize(sums: dict[str, tuple]) -> dict[str, float]:
    """`masked_sums` (possibly accumulated) or the engine's means of them →
    `{mae, rmse, mape}[_15min|_30min|_60min]` (a count of 0 gives 0, as GMAN's nan → 0)."""
    out = {}
    for key, value in sums.items():
        if isinstance(value, tuple):
            value = float(value[0]) / max(float(value[1]), 1.0)
        if key.startswith("mse"):
            key, value = "rmse" + key[3:], float(value) ** 0.5
        out[key] = float(value)
    return out


def accumulate(total: dict | None, sums: dict) -> dict:
    """Adds `sums` into `total` (None: start), as float64 numbers."""
    sums = {k: (float(s), float(c)) for k, (s, c) in sums.items()}
    if total is None:
        return sums
    return {k: (total[k][0] + s, total[k][1] + c) for k, (s, c) in sums.items()}


def last_value(last_reading: np.ndarray, horizon: int) -> np.ndarray:
    """last input reading `[b, N]` → forecast `[b, horizon, N]`."""
    return np.repeat(last_reading[:, None], horizon, axis=1)


def fit_historical_average(values: np.ndarray, time_of_day: np.ndarray, period: int):
    """Training readings `[T, N]` and their time-of-day step `[T]` → the mean non-zero
    reading per (time of day, sensor) `[period, N]` (a sensor's overall non-zero mean where
    it has no reading at that time)."""
    values = np.asarray(values, np.float64)
    seen = (values != 0).astype(np.float64)
    total = np.zeros((period, values.shape[1]))
    count = np.zeros_like(total)
    np.add.at(total, time_of_day, values * seen)
    np.add.at(count, time_of_day, seen)
    overall = (values * seen).sum(0) / np.maximum(seen.sum(0), 1)
    return np.where(count > 0, total / np.maximum(count, 1), overall[None]).astype(np.float32)


def historical_average(table: np.ndarray, time_of_day: np.ndarray) -> np.ndarray:
    """`fit_historical_average` table `[period, N]`, future time-of-day `[b, Q]` →
    forecast `[b, Q, N]`."""
    return table[time_of_day]
