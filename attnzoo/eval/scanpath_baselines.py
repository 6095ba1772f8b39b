"""Scanpath baselines fitted on the training scanpaths: a centre-bias sampler and a
sampler from the human fixation density of the training images.

Both draw fixations one at a time like the models: a duration from the training
durations (empirical), a position from their prior, until the fixation time is used up
(`viewing_budget_ms`: a fixation is kept if it starts before the budget ends). Positions
are per-axis fractions of the image (`u = x / width`, `v = y / height`), so a prior fitted
on images of every aspect applies to any image.
"""

from __future__ import annotations

import numpy as np

DENSITY_GRID = 32  # cells per axis of the training fixation histogram


def training_fixations(records: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(uv [N, 2], durations_ms [N], totals_ms [S])` of `scanpaths.load_split` records:
    every fixation's per-axis position fraction and duration, each scanpath's total time."""
    uv, durations, totals = [], [], []
    for i, (height, width) in enumerate(records["size"]):
        longer = max(height, width)
        for v, n in enumerate(records["lengths"][i]):
            if n:
                f = records["fixations"][i, v, :n]
                uv.append(f[:, :2] * longer / [width, height])
                durations.append(f[:, 2])
                totals.append(f[:, 2].sum())
    return np.concatenate(uv), np.concatenate(durations), np.array(totals)


def viewing_budget_ms(records: dict) -> float:
    """Mean total fixation time of a training scanpath (saccades excluded)."""
    return float(training_fixations(records)[2].mean())


def draw_until_budget(rng, draw_position, durations: np.ndarray, budget_ms: float) -> np.ndarray:
    """Fixations `[n, 3]` `(u, v, duration_ms)`: durations from `durations`, positions
    from `draw_position(rng) -> (u, v)`, while the elapsed fixation time < `budget_ms`."""
    out, elapsed = [], 0.0
    while elapsed < budget_ms:
        duration = float(rng.choice(durations))
        out.append((*draw_position(rng), duration))
        elapsed += duration
    return np.array(out)


class CentreBias:
    """Positions from a Gaussian at the image centre with the training fixations' per-axis
    std times `temperature` (1: the fitted std; < 1 concentrates the fixations at the
    centre, as a sampling temperature < 1 does for the models), clipped to the image."""

    def __init__(self, records: dict, temperature: float = 1.0):
        uv, self.durations, _ = training_fixations(records)
        self.std = uv.std(0) * temperature
        self.budget = viewing_budget_ms(records)

    def position(self, rng) -> np.ndarray:
        return np.clip(rng.normal(0.5, self.std), 0.0, 1.0)

    def sample(self, rng, size) -> np.ndarray:
        """A scanpath `[n, 3]` in pixels of an image of `size = (width, height)`."""
        path = draw_until_budget(rng, self.position, self.durations, self.budget)
        return path * [size[0], size[1], 1.0]


class TrainingDensity(CentreBias):
    """Positions from the histogram (`DENSITY_GRID`² cells, uniform inside a cell) of
    every training fixation."""

    def __init__(self, records: dict):
        super().__init__(records)
        uv = training_fixations(records)[0]
        counts, _, _ = np.histogram2d(uv[:, 0], uv[:, 1], bins=DENSITY_GRID, range=[[0, 1], [0, 1]])
        self.cell_probs = (counts / counts.sum()).ravel()  # [u cell * G + v cell]

    def position(self, rng) -> np.ndarray:
        cell = rng.choice(len(self.cell_probs), p=self.cell_probs)
        return (np.array(divmod(cell, DENSITY_GRID)) + rng.uniform(size=2)) / DENSITY_GRID
