"""Export a training run as a release: `.safetensors` + JSON + checksum.

    python -m attnzoo.export --workdir=runs/vit_tiny_fmnist_p4 --name=vit_tiny.fmnist_p4 \
        --out=release

Takes the run's best checkpoint (kept by `config.select`) if it has one, else its latest,
as `attnzoo.eval` does. Writes `OUT/NAME.safetensors` (params + model spec), `OUT/NAME.json`
(spec, sha256, size, the run's final or `attnzoo.eval` test metrics) and records the file's
line in `OUT/SHA256SUMS`. Register the file as a tag with `attnzoo.zoo.weights.register_weights`
and the printed sha256.
"""

import argparse
import json
import os

import ml_collections

from attnzoo import cli
from attnzoo.configs import ConfigError


def run_spec(workdir: str) -> dict:
    """The model spec of the run in `workdir`, rebuilt from its saved config (checkpoints
    written before specs were saved carry only the config)."""
    from flax import nnx

    from attnzoo.train_loops.checkpointing import latest_meta
    from attnzoo.train_loops.family import get_family
    from attnzoo.zoo.registry import model_spec

    found = latest_meta(workdir)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints; train first")
    meta = found[1]
    if meta.get("model"):
        return json.loads(meta["model"])
    config = ml_collections.ConfigDict(json.loads(meta["config"]))
    family = get_family(config)
    return model_spec(nnx.eval_shape(lambda: family.build_model(rngs=nnx.Rngs(0))))


def export_run(workdir: str, name: str, out: str) -> dict:
    """Writes the release of the run in `workdir` as `out/name.*`; returns its JSON record."""
    from attnzoo.train_loops.selection import best_step, best_workdir
    from attnzoo.zoo.pretrained import read_weights
    from attnzoo.zoo.release import write_release

    checkpoint = best_workdir(workdir) if best_step(workdir) is not None else workdir
    spec = run_spec(checkpoint)
    if name.partition(".")[0] != spec["name"]:
        raise ConfigError(f"--name={name!r} must start with {spec['name']!r}, the run's model")
    metric = {}
    for file in ("final_eval.json", "eval_test.json"):  # written by attnzoo.train / .eval
        if os.path.exists(os.path.join(workdir, file)):
            with open(os.path.join(workdir, file)) as f:
                metric = json.load(f)
            break
    record = write_release(read_weights(checkpoint).params, {**spec, "metric": metric}, out, name)
    sums = os.path.join(out, "SHA256SUMS")
    lines = open(sums).read().splitlines() if os.path.exists(sums) else []
    lines = [line for line in lines if not line.endswith(f"  {record['file']}")]
    with open(sums, "w") as f:
        f.write("\n".join([*lines, f"{record['sha256']}  {record['file']}"]) + "\n")
    return record


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.error = cli.raise_config_error
    parser.add_argument("--workdir", required=True, help="training run to export")
    parser.add_argument("--name", required=True, help="release name, e.g. vit_tiny.fmnist")
    parser.add_argument("--out", required=True, help="release folder")
    args = parser.parse_args(argv)
    record = export_run(args.workdir, args.name, args.out)
    print(json.dumps({k: record[k] for k in ("file", "sha256", "bytes", "metric")}), flush=True)


if __name__ == "__main__":
    cli.run(main)
