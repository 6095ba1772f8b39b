"""ETT / co2 series data: official window counts, train-only scaling, CSV errors."""

import os
from pathlib import Path

import numpy as np
import pytest

from attnzoo import data
from attnzoo.data import ett, paths

HORIZONS = (96, 192, 336, 720)


@pytest.fixture(scope="module")
def ett_dir():
    root = os.environ.get("ATTNZOO_DATA_DIR")
    if not root or not (Path(root) / "ett" / "ETTh1.csv").is_file():
        pytest.skip("ETT CSVs need ATTNZOO_DATA_DIR (e.g. ../shared/data; CI sets it)")
    return Path(root) / "ett"


@pytest.fixture(scope="module")
def tfds_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def official_len(split: str, horizon: int, seq_len: int = 96) -> int:
    """`len(Dataset_ETT_hour)` of the official loader, from its borders."""
    border1s = [0, 12 * 30 * 24 - seq_len, 12 * 30 * 24 + 4 * 30 * 24 - seq_len]
    border2s = [12 * 30 * 24, 12 * 30 * 24 + 4 * 30 * 24, 12 * 30 * 24 + 8 * 30 * 24]
    i = {"train": 0, "val": 1, "test": 2}[split]
    return border2s[i] - border1s[i] - seq_len - horizon + 1


@pytest.mark.parametrize("horizon", HORIZONS)
def test_window_counts_equal_the_official_loader(horizon):
    for split in ("train", "val", "test"):
        assert data.num_windows("etth1", split, horizon) == official_len(split, horizon)


def test_windows_are_the_official_scaled_rows(ett_dir, tfds_root):
    from sklearn.preprocessing import StandardScaler

    raw = np.loadtxt(ett_dir / "ETTh1.csv", delimiter=",", skiprows=1, usecols=range(1, 8))
    scaled = StandardScaler().fit(raw[: 12 * 30 * 24]).transform(raw)
    horizon = 192
    ds = data.make_window_dataset(
        "etth1",
        "val",
        horizon=horizon,
        batch_size=512,
        shuffle=False,
        seed=0,
        repeat=False,
        drop_remainder=False,
        tfds_dir=tfds_root,
        data_dir=str(ett_dir),
    )
    batches = list(ds)
    assert sum(len(b["index"]) for b in batches) == official_len("val", horizon)
    start = 12 * 30 * 24 - 96  # the official val border1
    for i in (0, 1, 700):
        b, j = divmod(i, 512)
        np.testing.assert_allclose(
            batches[b]["inputs"][j], scaled[start + i : start + i + 96], atol=2e-5
        )
        np.testing.assert_allclose(
            batches[b]["targets"][j], scaled[start + i + 96 : start + i + 96 + horizon], atol=2e-5
        )


def test_scaler_uses_training_rows_only(ett_dir, tmp_path):
    """Changing val/test rows leaves the scaler alone; changing a train row moves it."""
    raw = np.loadtxt(ett_dir / "ETTh1.csv", delimiter=",", skiprows=1, usecols=range(1, 8))
    lines = (ett_dir / "ETTh1.csv").read_text().splitlines()

    def scaler_of(edit_row: int | None, name: str):
        folder = tmp_path / name / "ett"
        folder.mkdir(parents=True)
        edited = list(lines)
        if edit_row is not None:
            date, *values = edited[1 + edit_row].split(",")
            edited[1 + edit_row] = ",".join([date] + [str(float(v) * 1000) for v in values])
        (folder / "ETTh1.csv").write_text("\n".join(edited) + "\n")
        data.fit_scaler.cache_clear()
        return data.fit_scaler("etth1", str(tmp_path / name / "tfds"), str(folder))

    mean, std = scaler_of(None, "clean")
    np.testing.assert_allclose(mean, raw[:8640].mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, raw[:8640].std(0), rtol=1e-5)
    for row in (8640, 12000, 14399):  # first val row, a test row, the last test row
        leaked_mean, leaked_std = scaler_of(row, f"edit{row}")
        np.testing.assert_array_equal(leaked_mean, mean)
        np.testing.assert_array_equal(leaked_std, std)
    moved_mean, _ = scaler_of(8639, "edit_train")  # the last train row does count
    assert not np.allclose(moved_mean, mean)


@pytest.mark.parametrize(
    "content, message",
    [
        ("date,A,B\n", "header"),
        ("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n2016-07-01,1,2,3,4,5,6\n", "line 2 has 7 fields"),
        (
            "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n2016-07-01,1,2,x,4,5,6,7\n",
            "line 2 has a non-numeric",
        ),
        ("date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT\n2016-07-01,1,2,3,4,5,6,7\n", "1 data rows"),
    ],
)
def test_malformed_csv_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "ETTh1.csv"
    path.write_text(content)
    with pytest.raises(paths.DataFormatError) as info:
        ett.read_csv(path)
    text = str(info.value)
    assert str(path) in text and message in text and "\n" not in text


def test_missing_csv_through_the_cli_is_one_line(tmp_path):
    from tests.helpers import cli

    result = cli(
        "attnzoo.train",
        "--config=pathformer_etth2_96:smoke",
        f"--workdir={tmp_path / 'w'}",
        f"--config.data.data_dir={tmp_path / 'nothing'}",
        env={"ATTNZOO_TFDS_DIR": str(tmp_path / "t")},
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "ETTh2.csv: file not found" in result.stderr


def test_co2_is_embedded_and_gap_free(tfds_root):
    from statsmodels.datasets import co2

    raw = co2.load().data["co2"].to_numpy()
    ds = data.make_window_dataset(
        "co2",
        "train",
        horizon=24,
        batch_size=64,
        shuffle=False,
        seed=0,
        repeat=False,
        drop_remainder=False,
        tfds_dir=tfds_root,
    )
    first = next(iter(ds))
    mean, std = data.fit_scaler("co2", tfds_root)
    assert np.isfinite(first["inputs"]).all()
    observed = ~np.isnan(raw[:96])
    np.testing.assert_allclose(
        first["inputs"][0, observed, 0] * std[0] + mean[0], raw[:96][observed], rtol=1e-5
    )
    assert data.num_windows("co2", "test", 24) == 457 + 96 - 96 - 24 + 1
