"""Sample from a trained run with its family's sampler (`Family.sample`).

    python -m attnzoo.sample --workdir=runs/pathformer_etth1_96 [--config=NAME] \
        [--split=test] [--num=4]
    python -m attnzoo.sample --workdir=runs/lm_tiny_shakespeare --prompt="ROMEO:" \
        [--max_new_tokens=200] [--temperature=0.8] [--top_k=0] [--top_p=1.0] [--seed=0]
    python -m attnzoo.sample --workdir=runs/dit_tiny_fmnist --num=64 [--guidance=4] \
        [--resolution=64] [--seed=0]

Uses the run's best checkpoint (kept by `config.select`) if it has one, else its latest
(its EMA params when the run keeps them); the config defaults to the one saved in that
checkpoint. Writes into WORKDIR/samples/ (forecast plots, generated text, image grids...) and
prints the paths. Sampling options go to samplers that take them (`Family.sample` keywords);
a family whose sampler lacks one refuses it in one line.
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
    parser.add_argument("--prompt", default=None, help="text to continue (generative families)")
    parser.add_argument("--max_new_tokens", type=int, default=None, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=None, help="0 = greedy")
    parser.add_argument("--top_k", type=int, default=None, help="keep the k likeliest (0 = all)")
    parser.add_argument("--top_p", type=float, default=None, help="nucleus mass (1 = all)")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale")
    parser.add_argument("--resolution", type=int, default=None, help="output size (pixels)")
    args, rest = parser.parse_known_args(argv)
    if args.num < 1:
        raise cli.ConfigError(f"--num={args.num} must be at least 1")
    options = {
        k: getattr(args, k)
        for k in (
            "prompt",
            "max_new_tokens",
            "temperature",
            "top_k",
            "top_p",
            "seed",
            "guidance",
            "resolution",
        )
        if getattr(args, k) is not None
    }
    _check_options(options)
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
    accepted = inspect.signature(trainer.family.sample).parameters
    for key in options:
        if key not in accepted:
            raise cli.ConfigError(f"--{key}: the {config.family} sampler does not take it")
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


def _check_options(options: dict) -> None:
    if options.get("max_new_tokens", 1) < 1:
        raise cli.ConfigError(f"--max_new_tokens={options['max_new_tokens']} must be at least 1")
    if options.get("temperature", 0.0) < 0:
        raise cli.ConfigError(f"--temperature={options['temperature']} must be >= 0")
    if options.get("top_k", 0) < 0:
        raise cli.ConfigError(f"--top_k={options['top_k']} must be >= 0 (0 = no top-k)")
    if not 0 < options.get("top_p", 1.0) <= 1:
        raise cli.ConfigError(f"--top_p={options['top_p']} must be in (0, 1]")
    if options.get("resolution", 1) < 1:
        raise cli.ConfigError(f"--resolution={options['resolution']} must be positive")


if __name__ == "__main__":
    cli.run(main)
