"""Evaluate a run: its best checkpoint (kept by `config.select`) if it has one, else its
latest.

    python -m attnzoo.eval --config=vit_tiny_digits --workdir=runs/digits [--split=test]

Prints the metrics as JSON and writes them to WORKDIR/eval_<split>.json.
"""

import json
import os

from attnzoo import cli


def main(argv: list[str]) -> None:
    args, config = cli.parse(argv, "Evaluate the latest checkpoint of an attnzoo run.")
    from attnzoo.train_loops.checkpointing import Checkpointer, checkpoint_dir, latest_meta
    from attnzoo.train_loops.selection import best_step, best_workdir
    from attnzoo.train_loops.trainer import Trainer

    if args.split:
        config.data.eval_split = args.split
    cli.check(config, args.workdir)
    which = "best" if best_step(args.workdir) is not None else "latest"
    directory = best_workdir(args.workdir) if which == "best" else args.workdir
    found = latest_meta(directory)
    if found is None:
        raise FileNotFoundError(
            f"no checkpoint in {checkpoint_dir(args.workdir)}; train first "
            f"with python -m attnzoo.train --config=... --workdir={args.workdir}"
        )
    step = found[0]
    trainer = Trainer(config, args.workdir)
    checkpointer = Checkpointer(directory, every=1, keep=config.train.keep_checkpoints)
    try:
        state, _, _ = trainer.restore(checkpointer, step)
    finally:
        checkpointer.close()
    split = config.data.eval_split
    metrics = trainer.evaluate(state, split)
    with open(os.path.join(args.workdir, f"eval_{split.replace('/', '_')}.json"), "w") as f:
        json.dump({"checkpoint": which, "step": step, "split": split, **metrics}, f, indent=1)
    print(json.dumps({"checkpoint": which, "step": step, "split": split, **metrics}), flush=True)


if __name__ == "__main__":
    cli.run(main)
