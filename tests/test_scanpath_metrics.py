"""Scanpath metrics on hand-worked cases, and MultiMatch against `multimatch-gaze`."""

import math

import numpy as np
import pytest

from attnzoo.eval import scanpath as sp

SIZE = (10, 10)


def path(*fixations):
    return np.array(fixations, float).reshape(-1, 3)


def random_path(rng, n):
    return np.c_[rng.uniform(0, 640, (n, 2)), rng.uniform(80, 600, n)]


def test_identical_scanpaths_score_perfectly():
    a = random_path(np.random.default_rng(0), 7)
    assert sp.scanmatch(a, a, (640, 480)) == pytest.approx(1.0)
    assert sp.scanmatch(a, a, (640, 480), temporal_bin_ms=50) == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in sp.multimatch(a, a, (640, 480)).values())
    cells = sp.grid_cells(a, (640, 480), 5, 5)
    assert sp.sequence_score(cells, cells) == 1.0
    assert sp.string_edit_distance(cells, cells) == 0
    assert sp.dtw(a, a) == 0.0


def test_grid_cells_row_major_and_clipped():
    a = path((0, 0, 1), (9.99, 0, 1), (0, 5, 1), (10, 10, 1))
    np.testing.assert_array_equal(sp.grid_cells(a, SIZE, 2, 2), [0, 1, 2, 3])


def test_scanmatch_hand_worked():
    # 2×1 grid, threshold 1.5: d = [[0,1],[1,0]], sub = |d - 1| + 0.5 = [[1.5,.5],[.5,1.5]].
    np.testing.assert_allclose(sp.scanmatch_substitution(2, 1, 1.5), [[1.5, 0.5], [0.5, 1.5]])
    a, b = path((2, 5, 100), (7, 5, 100)), path((2, 5, 100))
    # Best alignment: cell 0 with cell 0 (1.5), the other against a gap (0); / (1.5 · 2).
    kw = dict(cols=2, rows=1, threshold=1.5)
    assert sp.scanmatch(a, b, SIZE, **kw) == pytest.approx(0.5)
    assert sp.scanmatch(b, a, SIZE, **kw) == pytest.approx(0.5)
    # With 100 ms bins a 200 ms fixation is two symbols: [0] vs [0, 0] → 1.5 / 3.
    c = path((2, 5, 200))
    assert sp.scanmatch(b, c, SIZE, temporal_bin_ms=100, **kw) == pytest.approx(0.5)
    assert sp.scanmatch(b, c, SIZE, **kw) == pytest.approx(1.0)


def test_sequence_score_and_edit_distance_hand_worked():
    assert sp.sequence_score([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(3 / 4)  # LCS 3
    assert sp.sequence_score([1, 3, 2, 4], [1, 2, 3, 4]) == pytest.approx(3 / 4)
    assert sp.sequence_score([5], [6, 7]) == 0.0
    kitten, sitting = [10, 8, 19, 19, 4, 13], [18, 8, 19, 19, 8, 13, 6]
    assert sp.string_edit_distance(kitten, sitting) == 3
    assert sp.string_edit_distance(sitting, kitten) == 3


def test_dtw_hand_worked():
    assert sp.dtw(path((0, 0, 1)), path((3, 4, 1))) == 5.0
    assert sp.dtw(path((0, 0, 1), (2, 0, 1)), path((0, 0, 1))) == 2.0
    assert sp.dtw(path((0, 0, 1), (1, 0, 1)), path((0, 0, 1), (0, 0, 1), (1, 0, 1))) == 0.0


def test_multimatch_hand_worked():
    # Right, right vs down, down (durations differ on the second fixation), 10×10 image.
    a = path((0, 0, 100), (1, 0, 100), (2, 0, 100))
    b = path((0, 0, 100), (0, 1, 200), (0, 2, 100))
    got = sp.multimatch(a, b, SIZE)
    diag = 10 * math.sqrt(2)
    # Aligned pairs (0,0), (1,1); every vector difference is √2; starts 0 and √2 apart.
    assert got["vector"] == pytest.approx(1 - math.sqrt(2) / (2 * diag))
    assert got["direction"] == pytest.approx(0.5)
    assert got["length"] == pytest.approx(1.0)
    assert got["position"] == pytest.approx(1 - (math.sqrt(2) / 2) / diag)
    assert got["duration"] == pytest.approx(1 - 0.25)  # median of 0 and 100/200
    assert all(math.isnan(v) for v in sp.multimatch(a[:2], b, SIZE).values())


def test_multimatch_matches_multimatch_gaze():
    mg = pytest.importorskip("multimatch_gaze", reason="test extra multimatch-gaze==0.1.3")
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = random_path(rng, rng.integers(3, 12)), random_path(rng, rng.integers(3, 12))

        def record(p):
            return np.rec.fromarrays(
                [p[:, 0], p[:, 1], p[:, 2] / 1000], names="start_x,start_y,duration"
            )

        want = mg.docomparison(record(a), record(b), screensize=[640, 480])
        got = sp.multimatch(a, b, (640, 480))
        np.testing.assert_allclose([got[k] for k in sp.MULTIMATCH_NAMES], want, atol=1e-6)


def test_density_and_nss():
    density = sp.fixation_density([path((3, 2, 1)), path((3, 2, 1), (7, 7, 1))], SIZE, sigma=1)
    assert density.shape == (10, 10) and density.sum() == pytest.approx(1.0)
    assert np.unravel_index(density.argmax(), density.shape) == (2, 3)
    # Map [[1, 0], [0, 0]]: mean 1/4, population std √3/4, so z at (0, 0) is √3.
    saliency = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert sp.nss(saliency, path((0, 0, 1))) == pytest.approx(math.sqrt(3))
    assert sp.nss(saliency, path((0, 0, 1), (1, 1, 1))) == pytest.approx(
        (math.sqrt(3) - 1 / math.sqrt(3)) / 2
    )
