"""Train a model from a config.

    python -m attnzoo.train --config=vit_tiny_digits --workdir=runs/digits \
        [--config.train.steps=100 ...]

Resumes from the latest checkpoint in --workdir when there is one. Multi-process:
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` on each process.
"""

import json
import os
import sys

from attnzoo import cli


def main(argv: list[str]) -> None:
    args, config = cli.parse(argv, "Train an attnzoo model from a config.")
    from attnzoo.train_loops.trainer import Trainer, maybe_initialize_distributed

    maybe_initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
    cli.check(config, args.workdir)
    results = Trainer(config, args.workdir).train()
    import jax

    if jax.process_index() == 0:
        with open(os.path.join(args.workdir, "final_eval.json"), "w") as f:
            json.dump(results, f, indent=1)
        print("final eval:", json.dumps(results), file=sys.stdout, flush=True)


if __name__ == "__main__":
    cli.run(main)
