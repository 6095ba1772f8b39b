"""The train/eval command line: config loading, overrides and one-line errors."""

import json
import os

import pytest

from attnzoo.configs import ConfigError, apply_overrides, list_configs, load_config
from tests.helpers import cli


def test_every_config_has_a_docstring_and_smoke_variant():
    for name in list_configs():
        config = load_config(f"{name}:smoke")
        assert config.train.steps == 1, name
        assert config.family and config.model.name and config.data.name, name


def test_load_by_path_with_arg():
    from attnzoo.configs import config_path

    config = load_config(f"{config_path('vit_tiny_digits')}:smoke")
    assert config.train.steps == 1


def test_overrides_are_typed():
    config = load_config("vit_tiny_digits")
    apply_overrides(
        config,
        {
            "train.steps": "7",
            "optimizer.learning_rate": "3e-4",
            "data.augment": "false",
            "mesh.shape": "(2, 4, 1)",
            "model.name": "vit_small",
        },
    )
    assert config.train.steps == 7 and config.optimizer.learning_rate == 3e-4
    assert config.data.augment is False and tuple(config.mesh.shape) == (2, 4, 1)
    assert config.model.name == "vit_small"


@pytest.mark.parametrize(
    "spec, overrides, message",
    [
        ("vit_tiny_digit", {}, "unknown config 'vit_tiny_digit'; closest: vit_tiny_digits"),
        ("vit_tiny_digits:tiny", {}, "unknown argument 'tiny' for config vit_tiny_digits"),
        ("vit_tiny_digits", {"train.stepz": "3"}, "train has no field 'stepz'; closest: steps"),
        ("vit_tiny_digits", {"trian.steps": "3"}, "config has no field 'trian'; closest: train"),
        ("vit_tiny_digits", {"train.steps": "ten"}, "'ten' is not an int"),
        ("vit_tiny_digits", {"data.augment": "maybe"}, "'maybe' is not a bool"),
    ],
)
def test_config_errors(spec, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        apply_overrides(load_config(spec), overrides)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=vit_tiny_digit"], "unknown config 'vit_tiny_digit'; closest: vit_tiny_digits"),
        (["--config=vit_tiny_digits:smoke", "--config.train.stepz=2"], "no field 'stepz'"),
        (["--config=vit_tiny_digits:smoke", "--config.train.steps=x"], "'x' is not an int"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, args, message):
    result = cli("attnzoo.train", *args, f"--workdir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert message in result.stderr


def test_missing_data_error_says_where(tmp_path):
    # The official download is tried first; this machine has no network, so it fails.
    result = cli(
        "attnzoo.train",
        "--config=vit_tiny_fmnist:smoke",
        f"--workdir={tmp_path}",
        f"--config.data.data_dir={tmp_path / 'empty'}",
        env={"ATTNZOO_TFDS_DIR": str(tmp_path / "tfds")},
    )
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "fashion_mnist" in result.stderr and "empty" in result.stderr


def test_train_then_eval_cli(tmp_path):
    work = str(tmp_path / "run")
    result = cli(
        "attnzoo.train",
        "--config=vit_tiny_digits:smoke",
        f"--workdir={work}",
        "--config.train.steps=2",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("metrics.jsonl", "curves.png", "final_eval.json", "checkpoints/2"):
        assert os.path.exists(os.path.join(work, name)), name
    assert os.listdir(os.path.join(work, "tensorboard"))
    result = cli(
        "attnzoo.eval", "--config=vit_tiny_digits:smoke", f"--workdir={work}", "--split=test"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["step"] == 2 and 0 <= metrics["accuracy"] <= 1
    with open(os.path.join(work, "eval_test.json")) as f:
        assert json.load(f)["accuracy"] == metrics["accuracy"]
