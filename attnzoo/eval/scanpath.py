"""Scanpath metrics: ScanMatch, MultiMatch, sequence score, string-edit distance, DTW, NSS.

Conventions (every function):
* a scanpath is a float array `[n, 3]` of fixations `(x, y, duration_ms)` in image
  pixels, `x` to the right, `y` down, in viewing order; `size = (width, height)` in pixels;
* grids cover the image with `cols × rows` equal cells numbered row-major
  (`cell = row * cols + col`, `col = floor(x / width * cols)` clipped to the grid);
* similarities are higher-is-better in [0, 1]; SED and DTW are distances (lower better).

Definitions follow the references named in each docstring (ScanMatch: Cristino et al.
2010 and its MATLAB toolbox; MultiMatch: Jarodzka et al. 2010 / Dewhurst et al. 2012 as
in `multimatch-gaze` 0.1.3; sequence score: Chen et al. 2021; SED: Levenshtein).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def grid_cells(scanpath: np.ndarray, size, cols: int, rows: int) -> np.ndarray:
    """Row-major cell index `[n]` (int) of each fixation on a `cols × rows` grid."""
    width, height = size
    col = np.clip(np.floor(scanpath[:, 0] / width * cols), 0, cols - 1).astype(int)
    row = np.clip(np.floor(scanpath[:, 1] / height * rows), 0, rows - 1).astype(int)
    return row * cols + col


def needleman_wunsch(a, b, substitution: np.ndarray, gap: float = 0.0) -> float:
    """Best global-alignment score of symbol sequences `a`, `b` (ints) under
    `substitution[sa, sb]` and a linear `gap` score per gap (Needleman & Wunsch 1970)."""
    n, m = len(a), len(b)
    sub = substitution[np.ix_(np.asarray(a, int), np.asarray(b, int))]
    steps = gap * np.arange(m + 1)
    row = steps.astype(float)  # score[0, :]
    for i in range(1, n + 1):
        # Best without a final horizontal gap, then score[i, j] = max_k (that[k] + gap (j - k)).
        that = np.concatenate([[gap * i], np.maximum(row[:-1] + sub[i - 1], row[1:] + gap)])
        row = steps + np.maximum.accumulate(that - steps)
    return float(row[m])


def scanmatch_substitution(cols: int, rows: int, threshold: float) -> np.ndarray:
    """ScanMatch substitution matrix `[cells, cells]`: `threshold - d`, with `d` the
    Euclidean distance between cell centres in cell units (`ScanMatch_CreateSubMatrix`:
    `|d - max d| - (max d - threshold)`); positive for cells closer than `threshold`."""
    r, c = np.divmod(np.arange(cols * rows), cols)
    d = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])
    return np.abs(d - d.max()) - (d.max() - threshold)


def scanmatch(
    a: np.ndarray,
    b: np.ndarray,
    size,
    *,
    cols: int = 12,
    rows: int = 8,
    threshold: float = 3.5,
    temporal_bin_ms: float = 0.0,
) -> float:
    """ScanMatch similarity (Cristino et al. 2010) in [0, 1] (negative when very unlike).

    Fixations become grid cells (`cols × rows`, default 12 × 8); with `temporal_bin_ms >
    0` (e.g. 50: "ScanMatch with duration") each cell is repeated `round(duration /
    temporal_bin_ms)` times, as `ScanMatch_FixationToSequence`. The sequences are aligned
    by Needleman–Wunsch with gap 0 under `scanmatch_substitution(threshold)`; the score
    is divided by `max(substitution) * max(len(a), len(b))`.
    """
    sequences = []
    for path in (a, b):
        cells = grid_cells(path, size, cols, rows)
        if temporal_bin_ms > 0:
            cells = np.repeat(cells, np.round(path[:, 2] / temporal_bin_ms).astype(int))
        sequences.append(cells)
    substitution = scanmatch_substitution(cols, rows, threshold)
    longest = max(map(len, sequences))
    if longest == 0:
        return 1.0
    aligned = needleman_wunsch(*sequences, substitution, gap=0.0)
    return aligned / (substitution.max() * longest)


def sequence_score(a, b) -> float:
    """Sequence score (Chen et al. 2021) of symbol sequences `a`, `b`: Needleman–Wunsch
    with similarity 1 for equal symbols, 0 otherwise, gap 0 (i.e. the longest common
    subsequence), divided by the longer length. Symbols: e.g. `grid_cells` or clusters."""
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    symbols = np.unique(np.concatenate([np.asarray(a, int), np.asarray(b, int)]))
    ia, ib = np.searchsorted(symbols, a), np.searchsorted(symbols, b)
    return needleman_wunsch(ia, ib, np.eye(len(symbols))) / longest


def string_edit_distance(a, b) -> int:
    """Levenshtein distance (unit insertions, deletions, substitutions) of two symbol
    sequences; for scanpaths the symbols are `grid_cells(path, size, 5, 5)`."""
    b = np.asarray(b)
    steps = np.arange(len(b) + 1)
    row = steps  # distances from the empty prefix of `a`
    for i, sa in enumerate(a, start=1):
        # Best without a final insertion, then d[i, j] = min_k (that[k] + (j - k)).
        that = np.concatenate([[i], np.minimum(row[:-1] + (b != sa), row[1:] + 1)])
        row = steps + np.minimum.accumulate(that - steps)
    return int(row[-1])


def dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Dynamic time warping distance of the fixation positions (pixels): the least sum of
    Euclidean distances over a monotone alignment using every fixation of both paths."""
    cost = np.hypot(*(a[:, None, :2] - b[None, :, :2]).transpose(2, 0, 1))
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[-1, -1])


MULTIMATCH_NAMES = ("vector", "direction", "length", "position", "duration")


def _align_saccades(diff: np.ndarray) -> list[tuple[int, int]]:
    """Cheapest monotone path from (0, 0) to (n-1, m-1) through `diff [n, m]` moving right,
    down or diagonally, paying the entered cell (MultiMatch's Dijkstra on that graph)."""
    n, m = diff.shape
    acc = np.full((n, m), np.inf)
    acc[0, 0] = 0.0
    for i in range(n):
        for j in range(m):
            if i or j:
                best = min(
                    acc[i - 1, j] if i else np.inf,
                    acc[i, j - 1] if j else np.inf,
                    acc[i - 1, j - 1] if i and j else np.inf,
                )
                acc[i, j] = best + diff[i, j]
    path, (i, j) = [(n - 1, m - 1)], (n - 1, m - 1)
    while (i, j) != (0, 0):
        moves = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((p for p in moves if min(p) >= 0), key=lambda p: acc[p])
        path.append((i, j))
    return path[::-1]


def multimatch(a: np.ndarray, b: np.ndarray, size) -> dict[str, float]:
    """MultiMatch (Jarodzka et al. 2010; Dewhurst et al. 2012) without simplification:
    the five similarities `vector, direction, length, position, duration` in [0, 1].

    Saccades join consecutive fixations; they are aligned by the cheapest monotone path
    through the matrix of saccade-vector differences. Along it, medians of: vector
    difference / (2 · diagonal), angle difference / π, length difference / diagonal,
    start-position difference / diagonal, |d1 − d2| / max(d1, d2) of the saccades' first
    fixations; each similarity is 1 − that. Needs ≥ 3 fixations per path (else NaN), as
    `multimatch-gaze` 0.1.3 `docomparison`.
    """
    if len(a) < 3 or len(b) < 3:
        return dict.fromkeys(MULTIMATCH_NAMES, float("nan"))
    va, vb = np.diff(a[:, :2], axis=0), np.diff(b[:, :2], axis=0)  # saccades [n-1, 2]
    diff = np.linalg.norm(va[:, None] - vb[None, :], axis=-1)
    i, j = np.array(_align_saccades(diff)).T
    angle = np.abs(np.arctan2(va[i, 1], va[i, 0]) - np.arctan2(vb[j, 1], vb[j, 0]))
    angle = np.where(angle > np.pi, 2 * np.pi - angle, angle)
    da, db = a[i, 2], b[j, 2]
    diagonal = float(np.hypot(*size))
    return {
        "vector": 1 - np.median(diff[i, j]) / (2 * diagonal),
        "direction": 1 - np.median(angle) / np.pi,
        "length": 1
        - np.median(np.abs(np.linalg.norm(va[i], axis=1) - np.linalg.norm(vb[j], axis=1)))
        / diagonal,
        "position": 1 - np.median(np.linalg.norm(a[i, :2] - b[j, :2], axis=1)) / diagonal,
        "duration": 1 - np.median(np.abs(da - db) / np.maximum(da, db)),
    }


def fixation_density(scanpaths, size, *, sigma: float) -> np.ndarray:
    """Fixation-density saliency map `[height, width]` (sums to 1): every fixation of the
    (human) `scanpaths` adds 1 at its pixel (rounded down, clipped), then a Gaussian blur
    of std `sigma` px (`scipy.ndimage.gaussian_filter`, reflect borders)."""
    width, height = size
    counts = np.zeros((height, width))
    for path in scanpaths:
        x = np.clip(path[:, 0].astype(int), 0, width - 1)
        y = np.clip(path[:, 1].astype(int), 0, height - 1)
        np.add.at(counts, (y, x), 1.0)
    density = ndimage.gaussian_filter(counts, sigma)
    return density / density.sum()


def nss(saliency: np.ndarray, scanpath: np.ndarray) -> float:
    """Normalised scanpath saliency: the saliency map `[H, W]` z-scored with its
    population std (ddof 0), averaged over the fixated pixels of `scanpath`."""
    z = (saliency - saliency.mean()) / saliency.std()
    height, width = saliency.shape
    x = np.clip(scanpath[:, 0].astype(int), 0, width - 1)
    y = np.clip(scanpath[:, 1].astype(int), 0, height - 1)
    return float(z[y, x].mean())
