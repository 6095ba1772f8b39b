"""Sample from a trained run with its family's sampler (`Family.sample`).

    python -m attnzoo.sample --workdir=runs/pathformer_etth1_96 [--config=NAME] \
        [--split=test] [--num=4]

Uses the run's best checkpoint (kept by `config.select`) if it has one, else its latest;
the config defaults to the one saved in that checkpoint. Writes into WORKDIR/samples/
(e.g. forecast plots for time series) and prints the paths.
"""

import argparse
import json
import os

from attnzoo import cli


def saved_config(directory: str, step: int):
    """The config stored with checkpoint `step` of `directory`'s checkpoints."""
    import ml_collections
    import orbax.checkpoint as ocp

    from attnzoo.train_loops.checkpointing import checkpoint_dir

    with ocp.CheckpointManager(checkpoint_dir(directory), item_names=("meta",)) as manager:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    return ml_collections.ConfigDict(json.loads(meta["config"]))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Sample from a trained attnzoo run.")
    parser.add_argument("--workdir", required=True, help="the run's directory")
    parser.add_argument("--config", default=None, help="config (default: the run's own)")
    parser.add_argument("--split", default=None, help="split to sample from (default: eval)")
    parser.add_argument("--num", type=int, default=4, help="how many samples")
    args, rest = parser.parse_known_args(argv)
    from attnzoo.train_loops.checkpointing import Checkpointer, checkpoint_dir
    from attnzoo.train_loops.selection import best_step, best_workdir
    from attnzoo.train_loops.trainer import Trainer

    directory = best_workdir(args.workdir) if best_step(args.workdir) is not None else args.workdir
    checkpointer = Checkpointer(directory, every=1, keep=1)
    step = checkpointer.latest_step()
    if step is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir(args.workdir)}; train first with "
            f"python -m attnzoo.train --config=... --workdir={args.workdir}"
        )
    if args.config or rest:
        _, config = cli.parse(
            [f"--config={args.config}", f"--workdir={args.workdir}", *rest], parser.description
        )
    else:
        config = saved_config(directory, step)
    trainer = Trainer(config, args.workdir)
    state, _, _ = trainer.restore(checkpointer, step)
    checkpointer.close()
    out_dir = os.path.join(args.workdir, "samples")
    os.makedirs(out_dir, exist_ok=True)
    split = args.split or config.data.eval_split
    written = trainer.family.sample(
        trainer.model(state["model"]), out_dir, split=split, num=args.num
    )
    print(f"step {step}: wrote {len(written)} samples to {out_dir}", flush=True)
    for path in written:
        print(path, flush=True)


if __name__ == "__main__":
    cli.run(main)
