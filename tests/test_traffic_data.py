"""Los-loop data: GMAN's chronological split, train-only scaler, time features, file errors."""

import os
from pathlib import Path

import numpy as np
import pytest

from attnzoo import data
from attnzoo.data import graph_windows, los_loop, paths


@pytest.fixture(scope="module")
def raw_dir():
    root = os.environ.get("ATTNZOO_DATA_DIR")
    if not root or not (Path(root) / los_loop.RAW_SUBDIR / los_loop.SPEED_FILE).is_file():
        pytest.skip("Los-loop CSVs need ATTNZOO_DATA_DIR (e.g. ../shared/data; CI sets it)")
    return Path(root) / los_loop.RAW_SUBDIR


@pytest.fixture(scope="module")
def tfds_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def test_split_is_chronological_70_10_20_and_scaler_uses_train_only(raw_dir, tfds_root):
    speeds = np.loadtxt(raw_dir / los_loop.SPEED_FILE, delimiter=",", skiprows=1)
    assert speeds.shape == (2016, 207)
    # GMAN utils.loadData: train = round(0.7 T), test = round(0.2 T), val = the rest.
    assert data.dataset_info("los_loop")["splits"] == {"train": 1411, "val": 202, "test": 403}
    assert [data.num_windows("los_loop", s, 12) for s in ("train", "val", "test")] == [
        1411 - 23,
        202 - 23,
        403 - 23,
    ]
    mean, std = graph_windows.fit_scalar_scaler("los_loop", tfds_root, str(raw_dir))
    assert (mean, std) == pytest.approx((speeds[:1411].mean(), speeds[:1411].std()), rel=1e-6)
    ds = graph_windows.make_graph_window_dataset(
        "los_loop", "test", batch_size=2, shuffle=False, seed=0, repeat=False,
        tfds_dir=tfds_root, data_dir=str(raw_dir),
    )  # fmt: skip
    batch = next(iter(ds))
    first = 2016 - 403  # the test split's first row
    np.testing.assert_allclose(batch["targets"][0], speeds[first + 12 : first + 24], rtol=1e-6)
    np.testing.assert_allclose(
        batch["inputs"][1], (speeds[first + 1 : first + 13] - mean) / std, rtol=1e-5, atol=1e-5
    )
    # Row 1613 = day 5 (Thursday + 5 = Tuesday), step 1613 - 5 * 288 = 173 of the day.
    np.testing.assert_array_equal(batch["time"][0, 0], [1, 173])
    assert batch["time"].shape == (2, 24, 2)


def test_time_features_wrap_days_and_weeks():
    rows = np.array([0, 287, 288, 7 * 288 - 1, 7 * 288])
    np.testing.assert_array_equal(
        graph_windows.time_features(rows, 288, 3),
        [[3, 0], [3, 287], [4, 0], [2, 287], [3, 0]],
    )


def test_bad_files_stop_with_one_line_naming_the_file(tmp_path):
    with pytest.raises(paths.DataNotFoundError, match="los_adj.csv: file not found"):
        los_loop.load_adjacency(tmp_path)
    bad = tmp_path / "los_adj.csv"
    bad.write_text("1,0\n0,1\n")
    with pytest.raises(paths.DataFormatError, match=r"los_adj.csv: line 1 has 2 fields"):
        los_loop.read_adjacency(bad)
    speeds = tmp_path / "los_speed.csv"
    speeds.write_text(",".join(map(str, range(207))) + "\n" + ",".join(["x"] * 207) + "\n")
    with pytest.raises(paths.DataFormatError, match="line 2 has a non-numeric value") as info:
        los_loop.read_speeds(speeds)
    assert "\n" not in str(info.value) and str(speeds) in str(info.value)
