"""`load_torch_file` against values PyTorch itself read from the same file.

`tests/data/torch_save.pt` was written by `torch.save` (PyTorch 2.13, by
`tests/data/make_torch_save.py`) in the layout of DiT's `train.py` checkpoints: model, EMA
and optimizer state dicts and the `argparse.Namespace` of the run's arguments.
"""

import argparse
import os
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest

from attnzoo.zoo.state_dict import read_state_dict
from attnzoo.zoo.torch_checkpoint import load_torch_file

DATA = os.path.join(os.path.dirname(__file__), "data")
CHECKPOINT = os.path.join(DATA, "torch_save.pt")


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(DATA, "torch_save_expected.npz")) as f:
        return {k: f[k] for k in f.files}


def test_every_tensor_matches_torch(expected):
    state = load_torch_file(CHECKPOINT)
    assert state["args"] == argparse.Namespace(model="DiT-XL/2", image_size=256)
    for part in ("model", "ema"):
        for name, value in state[part].items():
            want = expected[f"{part}/{name}"]
            assert value.shape == want.shape, name
            np.testing.assert_array_equal(value.astype(want.dtype), want, err_msg=name)
    np.testing.assert_array_equal(state["opt"]["state"][0]["exp_avg"], expected["opt_exp_avg"])
    assert state["model"]["half"].dtype == np.float16
    assert state["model"]["bf16"].dtype == ml_dtypes.bfloat16
    assert state["model"]["counter"].shape == () and state["model"]["counter"] == 7
    assert state["opt"]["param_groups"][0]["lr"] == 1e-4


def test_read_state_dict_takes_the_ema_in_float32(expected):
    tensors = read_state_dict(CHECKPOINT)
    assert sorted(tensors) == sorted(k.split("/")[1] for k in expected if k.startswith("ema/"))
    np.testing.assert_array_equal(tensors["transposed"], expected["ema/transposed"])
    assert tensors["bf16"].dtype == np.float32 and tensors["ints"].dtype == np.int32


def test_refuses_code_in_the_pickle(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps(os.system))
    with pytest.raises(pickle.UnpicklingError, match="posix.system is not allowed"):
        load_torch_file(str(path))


def test_refuses_a_legacy_file(tmp_path):
    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match="not a zip-format torch.save file"):
        load_torch_file(str(path))
