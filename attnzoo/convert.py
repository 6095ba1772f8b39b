"""Convert an official checkpoint into an attnzoo release (`.safetensors` + JSON).

    python -m attnzoo.convert --model=vit_tiny --checkpoint=vit_tiny_patch16_224.safetensors \
        --out=release [--name=vit_tiny.augreg_in21k] [--set=num_heads=3 ...]

Every official tensor is mapped by name with its shape checked; tensors left over or
params missing make it fail. The release loads with
`create_model(MODEL, pretrained="OUT/NAME.safetensors")`, and as a tag once registered with
the printed sha256 (`attnzoo.zoo.weights.register_weights`).
"""

import argparse
import ast
import importlib
import importlib.util
import json
import os
import pkgutil

from attnzoo import cli
from attnzoo.configs import ConfigError


def _import_converters() -> None:
    """Imports every family's `convert.py`, running its `@register_converter`s."""
    import attnzoo.zoo as zoo

    for info in pkgutil.iter_modules(zoo.__path__):
        if info.ispkg and importlib.util.find_spec(f"attnzoo.zoo.{info.name}.convert"):
            importlib.import_module(f"attnzoo.zoo.{info.name}.convert")


def convert(arch: str, checkpoint: str, **options) -> tuple[dict, dict]:
    """`(spec, params)` of official `checkpoint` for architecture `arch`, checked against
    the model it builds."""
    import jax
    from flax import nnx

    from attnzoo.zoo.registry import build, get_architecture, model_spec
    from attnzoo.zoo.state_dict import StateDict, check_fits, get_converter, read_state_dict

    get_architecture(arch)
    _import_converters()
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"no checkpoint file at {os.path.abspath(checkpoint)}")
    sd = StateDict(read_state_dict(checkpoint))
    kwargs, params = get_converter(arch)(arch, sd, **options)
    sd.finish()
    abstract = nnx.eval_shape(lambda: build(arch, kwargs))
    state = nnx.to_pure_dict(nnx.state(abstract, nnx.Any(nnx.Param, nnx.BatchStat)))
    expected = {
        "/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape)
        for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]
    }
    check_fits(params, expected)
    return model_spec(abstract), params


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.error = cli.raise_config_error
    parser.add_argument("--model", required=True, help="attnzoo architecture, e.g. vit_tiny")
    parser.add_argument("--checkpoint", required=True, help=".safetensors, .npz, .pt or .pth")
    parser.add_argument("--out", required=True, help="release folder")
    parser.add_argument("--name", help="release name (default MODEL.<checkpoint file stem>)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting the checkpoint does not record (num_heads=3, topks=(1,4,16,-2))",
    )
    args = parser.parse_args(argv)
    from attnzoo.zoo.release import write_release

    options = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--set={item!r} must read KEY=VALUE")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ConfigError(f"--set={item!r}: {value!r} is not a Python literal") from None
    spec, params = convert(args.model, args.checkpoint, **options)
    stem = os.path.basename(args.checkpoint).rsplit(".", 1)[0].replace(".", "_")
    name = args.name or f"{args.model}.{stem}"
    source = {"converted_from": os.path.basename(args.checkpoint)}
    record = write_release(params, {**spec, **source}, args.out, name)
    print(json.dumps({k: record[k] for k in ("file", "sha256", "bytes")}), flush=True)


if __name__ == "__main__":
    cli.run(main)
