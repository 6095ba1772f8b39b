"""Weight registry, cache, download and shape adaptation of pretrained weights."""

import dataclasses
import functools
import http.server
import os
import threading

import numpy as np
import pytest
from flax import nnx

import attnzoo
from attnzoo.configs import ConfigError, load_config
from attnzoo.layers.posemb import resample_1d, resample_2d
from attnzoo.train_loops.checkpointing import Checkpointer
from attnzoo.train_loops.trainer import Trainer
from attnzoo.validation import validate
from attnzoo.zoo import weights
from attnzoo.zoo.hub import WeightsFileError
from attnzoo.zoo.registry import model_spec
from attnzoo.zoo.release import write_release
from tests.helpers import flat_state

TINY = dict(width=32, depth=1, num_heads=2, mlp_dim=64, patch_size=4, pool="gap")
SOURCE = dict(num_classes=10, image_size=[28, 28], in_channels=1, **TINY)


def _flat(model) -> dict[str, np.ndarray]:
    return flat_state(nnx.state(model, nnx.Param))


def _half_pixel_bilinear(grid: np.ndarray, out: int) -> np.ndarray:
    """`[n, n, d] -> [out, out, d]` from the definition: sample at (i + 0.5) n/out - 0.5,
    clamped to the edges, weights linear in the distance (PyTorch align_corners=False)."""
    n = grid.shape[0]
    pos = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = pos - lo
    rows = grid[lo] * (1 - w)[:, None, None] + grid[hi] * w[:, None, None]
    return rows[:, lo] * (1 - w)[None, :, None] + rows[:, hi] * w[None, :, None]


def test_posemb_resampling_is_bilinear_and_the_identity_at_the_same_size():
    table = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    np.testing.assert_array_equal(resample_2d(table, (4, 4), (4, 4)), table)
    np.testing.assert_array_equal(resample_1d(table, 16), table)
    expected = _half_pixel_bilinear(table.reshape(4, 4, 6), 6).reshape(36, 6)
    np.testing.assert_allclose(resample_2d(table, (4, 4), (6, 6)), expected, atol=1e-6)
    with pytest.raises(ValueError, match="not a \\(3, 3\\) grid"):
        resample_2d(table, (3, 3), (2, 2))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny Fashion-MNIST-shaped ViT written as a release, served on loopback HTTP."""
    root = tmp_path_factory.mktemp("served")
    model = attnzoo.create_model("vit_tiny", rngs=nnx.Rngs(1), **SOURCE)
    params = _flat(model)
    record = write_release(params, model_spec(model), str(root), "vit_tiny.tiny")
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    handler = functools.partial(quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"params": params, "record": record, "url": f"http://127.0.0.1:{server.server_port}"}
    server.shutdown()


@pytest.fixture
def tag(release, tmp_path, monkeypatch):
    """`vit_tiny.tiny` registered with a URL source and an empty cache."""
    monkeypatch.setenv("ATTNZOO_CACHE", str(tmp_path / "cache"))
    config = weights.WeightsConfig(
        model="vit_tiny",
        filename=release["record"]["file"],
        sha256=release["record"]["sha256"],
        kwargs=SOURCE,
        source=f"{release['url']}/{release['record']['file']}",
        input_size=(28, 28, 1),
        num_classes=10,
        classifier=r"^head/",
    )
    monkeypatch.setitem(weights._TAGS, "vit_tiny.tiny", config)
    return config


def test_tag_downloads_into_the_cache_and_loads(tag, release, tmp_path):
    assert "vit_tiny.tiny" in attnzoo.list_models(pretrained=True)
    assert "vit_tiny.tiny" in attnzoo.list_models("vit_*", pretrained=True)
    model = attnzoo.create_model("vit_tiny.tiny", pretrained=True)
    assert os.path.exists(tmp_path / "cache" / "vit_tiny.tiny" / tag.filename)
    assert model_spec(model)["kwargs"] == SOURCE
    got = _flat(model)
    assert got.keys() == release["params"].keys()
    for name, value in release["params"].items():
        np.testing.assert_array_equal(got[name], value)
    fresh = attnzoo.create_model("vit_tiny.tiny")  # architecture of the tag, no weights
    assert fresh.grid == (7, 7) and not np.array_equal(_flat(fresh)["posemb"], got["posemb"])


def test_overrides_reset_the_classifier_and_resample_the_posemb(tag, release):
    model = attnzoo.create_model("vit_tiny.tiny", pretrained=True, num_classes=3, image_size=(8, 8))
    got, src = _flat(model), release["params"]
    assert got["head/kernel"].shape == (32, 3) and not got["head/kernel"].any()
    np.testing.assert_allclose(got["posemb"], resample_2d(src["posemb"], (7, 7), (2, 2)))
    np.testing.assert_array_equal(got["blocks/0/mlp/fc1/kernel"], src["blocks/0/mlp/fc1/kernel"])


def test_corrupt_or_missing_file_is_one_line_naming_where_it_goes(tag, tmp_path, monkeypatch):
    path = tmp_path / "cache" / "vit_tiny.tiny" / tag.filename
    os.makedirs(path.parent)
    path.write_bytes(b"not the weights")
    with pytest.raises(WeightsFileError, match="is corrupt") as corrupt:
        attnzoo.create_model("vit_tiny.tiny", pretrained=True)
    assert "\n" not in str(corrupt.value) and str(path) in str(corrupt.value)
    path.unlink()
    monkeypatch.setitem(weights._TAGS, "vit_tiny.tiny", dataclasses.replace(tag, source=""))
    with pytest.raises(WeightsFileError, match="not found: put") as missing:
        attnzoo.create_model("vit_tiny.tiny", pretrained=True)
    assert "\n" not in str(missing.value) and str(path) in str(missing.value)
    with pytest.raises(ValueError, match="unknown pretrained tag 'vit_tiny.nope'; known: vit_tiny"):
        attnzoo.create_model("vit_tiny.nope", pretrained=True)
    with pytest.raises(ValueError, match="pretrained=True needs a tag"):
        attnzoo.create_model("vit_tiny", pretrained=True)


def test_finetune_config_loads_a_tag(tag, release, tmp_path):
    """(The fine-tuned run is rebuilt from its workdir in tests/test_finetune_notebook.py.)"""
    config = load_config("vit_tiny_fmnist_to_digits:smoke")
    config.init_from.path = "vit_tiny.tiny"
    trainer = Trainer(config, str(tmp_path / "ft"))
    checkpointer = Checkpointer(str(tmp_path / "ft"), every=1, keep=1)
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    state, _ = trainer.restore_or_init(checkpointer, data)
    checkpointer.close()
    loaded, src = _flat(trainer.model(state["model"])), release["params"]
    np.testing.assert_allclose(loaded["posemb"], resample_2d(src["posemb"], (7, 7), (8, 8)))
    np.testing.assert_array_equal(loaded["stem/proj/kernel"], src["stem/proj/kernel"])
    assert not loaded["head/kernel"].any()  # reset by init_from.skip


def test_init_from_is_checked_before_anything_is_written(tag, tmp_path, monkeypatch):
    config = load_config("vit_tiny_fmnist_to_digits:smoke")
    for path in ("vit_tiny.nope", str(tmp_path / "nowhere")):
        config.init_from.path = path
        with pytest.raises(ConfigError, match="neither a pretrained tag"):
            validate(config)
    config.init_from.path = "pathformer.etth1_96"  # refused before its file is looked for
    with pytest.raises(ConfigError, match="holds pathformer weights; --config.model is vit_tiny"):
        validate(config)
    config.init_from.path = "vit_tiny.tiny"
    validate(config)  # a URL source: fetched when loaded
    monkeypatch.setitem(weights._TAGS, "vit_tiny.tiny", dataclasses.replace(tag, source=""))
    with pytest.raises(ConfigError, match="weights not found: put vit_tiny.tiny.safetensors at"):
        validate(config)


def test_array_kwargs_and_batch_stats_travel_in_the_release(tmp_path):
    """GMAN is built from arrays (spatial embedding, adjacency): the release's spec holds
    them exactly, and the rebuilt model (BatchNorm statistics included) predicts the same."""
    rng = np.random.default_rng(0)
    arrays = dict(
        spatial_embedding=rng.normal(size=(5, 3)).astype(np.float32),
        adjacency=(rng.random((5, 5)) > 0.5).astype(np.float64),
    )
    kwargs = dict(input_len=4, horizon=2, steps_per_day=6, mean=50.0, std=10.0, num_blocks=1)
    kwargs.update(num_heads=2, head_dim=2, bn_decay_steps=1, **arrays)
    model = attnzoo.create_model("gman", rngs=nnx.Rngs(3), **kwargs)
    inputs = rng.normal(size=(2, 4, 5)).astype(np.float32)
    time = np.stack([rng.integers(0, 7, (2, 6)), rng.integers(0, 6, (2, 6))], -1)
    model(inputs, time)  # a training call moves the batch-norm statistics off their init
    model.eval()
    flat = flat_state(nnx.state(model, nnx.Not(nnx.RngState)))
    assert any(name.endswith("mean") and value.any() for name, value in flat.items())
    write_release(flat, model_spec(model), str(tmp_path), "gman.tiny")

    rebuilt = attnzoo.create_model("gman", pretrained=str(tmp_path / "gman.tiny.safetensors"))
    rebuilt.eval()
    np.testing.assert_array_equal(rebuilt.spatial_embedding[...], arrays["spatial_embedding"])
    np.testing.assert_array_equal(rebuilt.graph_mask[...], arrays["adjacency"] > 0)
    assert model_spec(rebuilt) == model_spec(model)  # the arrays' exact bytes, as JSON
    np.testing.assert_array_equal(rebuilt(inputs, time), model(inputs, time))


def test_every_tag_builds_from_its_stored_config():
    """Each tag's kwargs fit its architecture (GMAN's spatial embedding lives in its file)."""
    tags = attnzoo.list_models(pretrained=True)
    assert {tag.partition(".")[0] for tag in tags} >= {"vit_tiny", "lm_tiny", "dit_tiny", "gman"}
    for tag in tags:
        config = weights.get_weights(tag)
        arrays = {}
        if config.model == "gman":
            arrays["spatial_embedding"] = np.zeros((config.input_size[1], 64), np.float32)
        model = nnx.eval_shape(lambda: attnzoo.create_model(tag, **arrays))  # noqa: B023
        assert model_spec(model)["name"] == config.model, tag
