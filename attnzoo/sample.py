"""Sample from a trained run with its family's sampler (`Family.sample`).

    python -m attnzoo.sample --workdir=runs/pathformer_etth1_96 [--config=NAME] \
        [--split=test] [--num=4] [--seed=0] [--guidance=4] [--resolution=64]

Uses the run's best checkpoint (kept by `config.select`) if it has one, else its latest;
the config defaults to the one saved in that checkpoint. Writes into WORKDIR/samples/
(e.g. forecast plots for time series, image grids for diffusion) and prints the paths.
`--seed`, `--guidance` (classifier-free scale) and `--resolution` (square output size) go to
the family's sampler when given; a family whose sampler lacks one refuses it in one line.
"""

import argparse
import inspect
import json
import os

from attnzoo import cli


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Sample from a trained attnzoo run.")
    parser.error = cli.raise_config_error  # one line, exit 2
    parser.add_argument("--workdir", required=True, help="the run's directory")
    parser.add_argument("--config", default=None, help="config (default: the run's own)")
    parser.add_argument("--split", default=None, help="split to sample from (default: eval)")
    parser.add_argument("--num", type=int, default=4, help="how many samples")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale")
    parser.add_argument("--resolution", type=int, default=None, help="output size (pixels)")
    args, rest = parser.parse_known_args(argv)
    if args.num < 1:
        raise cli.ConfigError(f"--num={args.num} must be at least 1")
    if rest and not args.config:
        raise cli.ConfigError(
            f"{rest[0]!r} needs --config=NAME (without overrides the run's own config is used)"
        )
    import ml_collections

    from attnzoo.train_loops.checkpointing import Checkpointer, checkpoint_dir, latest_meta
    from attnzoo.train_loops.family import Family
    from attnzoo.train_loops.selection import best_step, best_workdir
    from attnzoo.train_loops.trainer import Trainer

    directory = best_workdir(args.workdir) if best_step(args.workdir) is not None else args.workdir
    found = latest_meta(directory)  # reads only: a failed call writes nothing
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir(args.workdir)}; train first with "
            f"python -m attnzoo.train --config=... --workdir={args.workdir}"
        )
    step, meta = found
    if args.config:
        _, config = cli.parse(
            [f"--config={args.config}", f"--workdir={args.workdir}", *rest], parser.description
        )
    else:
        config = ml_collections.ConfigDict(json.loads(meta["config"]))
    if args.split:
        config.data.eval_split = args.split
    cli.check(config, args.workdir)
    trainer = Trainer(config, args.workdir)
    if type(trainer.family).sample is Family.sample:
        raise NotImplementedError(f"the {config.family} family has no sampler yet")
    options = {k: getattr(args, k) for k in ("seed", "guidance", "resolution")}
    options = {k: v for k, v in options.items() if v is not None}
    accepted = inspect.signature(trainer.family.sample).parameters
    for name in options:
        if name not in accepted:
            raise cli.ConfigError(f"--{name} is not an option of the {config.family} sampler")
    if options.get("resolution", 1) < 1:
        raise cli.ConfigError(f"--resolution={options['resolution']} must be positive")
    checkpointer = Checkpointer(directory, every=1, keep=1)
    try:
        state, _, _ = trainer.restore(checkpointer, step)
    finally:
        checkpointer.close()
    out_dir = os.path.join(args.workdir, "samples")
    os.makedirs(out_dir, exist_ok=True)
    written = trainer.family.sample(
        trainer.model(trainer.inference_state(state)),
        out_dir,
        split=config.data.eval_split,
        num=args.num,
        **options,
    )
    print(f"step {step}: wrote {len(written)} samples to {out_dir}", flush=True)
    for path in written:
        print(path, flush=True)


if __name__ == "__main__":
    cli.run(main)
