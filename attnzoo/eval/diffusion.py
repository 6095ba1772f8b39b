"""Sample quality of image generators: FID-FMNIST, precision/recall, PNG grids.

FID-FMNIST is the Fréchet distance (Heusel et al., 2017) between Gaussian fits of the
features of real and generated images, with the features of a *zoo classifier trained on
Fashion-MNIST* (the pooled representation of a ViT), not Inception-v3: its values are not
comparable with published FIDs. Precision/recall follow Kynkäänniemi et al. (2019): a sample
is precise when it lies in the k-NN ball of some real feature, a real feature is recalled
when it lies in the k-NN ball of some sample (k = 3).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """`|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))` of features `[n, d]`."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(np.atleast_2d(cov_a) @ np.atleast_2d(cov_b))
    covmean = np.real(covmean)  # drop the numerical imaginary part
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * covmean)
    return float(value)


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of `x` to its k-th nearest other row."""
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself


def _covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    d = np.sqrt(((points[:, None] - centres[None]) ** 2).sum(-1))  # [p, c]
    return (d <= radii[None]).any(1)


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall of features `fake` against `real` (`[n, d]` each)."""
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} real and fake samples")
    precision = _covered(fake, real, _knn_radii(real, k)).mean()
    recall = _covered(real, fake, _knn_radii(fake, k)).mean()
    return float(precision), float(recall)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats -> uint8 pixels (0..255)."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """`[n, H, W, C]` in [-1, 1] -> one uint8 image `[rows*(H+2), cols*(W+2), C]`."""
    n, h, w, c = images.shape
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    out = np.zeros((rows * (h + 2), cols * (w + 2), c), np.uint8)
    for i, image in enumerate(to_uint8(images)):
        r, q = divmod(i, cols)
        out[r * (h + 2) + 1 : r * (h + 2) + 1 + h, q * (w + 2) + 1 : q * (w + 2) + 1 + w] = image
    return out


def save_grid(images: np.ndarray, path: str, *, columns: int | None = None) -> None:
    """Writes `grid(images, columns)` as a PNG (grey when one channel)."""
    import matplotlib.image

    tiled = grid(images, columns)
    if tiled.shape[-1] == 1:
        matplotlib.image.imsave(path, tiled[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        matplotlib.image.imsave(path, tiled)
