"""A run's first checkpoint save: orbax's default pytree handler against the engine's
`Checkpointer` (replica-parallel saving off on CPU), each in a fresh process, same state.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/checkpoint_save.py \
        --configs vit_tiny_fmnist pathformer_etth1_96 --devices 8

Replica-parallel saving slices every replicated array once per device with an op compiled
per shape; the compiles land on the first save of every process (later saves reuse them).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def first_save_seconds(config: str, handler: str) -> dict:
    """In this process: the config's fresh state saved once with `handler`, timed to disk."""
    import jax
    import orbax.checkpoint as ocp

    from attnzoo.configs import load_config
    from attnzoo.train_loops import checkpointing
    from attnzoo.train_loops.trainer import Trainer, _to_pure

    trainer = Trainer(load_config(config), tempfile.mkdtemp())
    state = jax.block_until_ready(_to_pure(trainer.init_state()))
    directory = tempfile.mkdtemp()
    start = time.perf_counter()
    if handler == "orbax_default":
        with ocp.CheckpointManager(directory, item_names=("state",)) as manager:
            saved = ocp.args.StandardSave(checkpointing.keys_to_data(state))
            manager.save(1, args=ocp.args.Composite(state=saved))
            manager.wait_until_finished()
    else:
        ckpt = checkpointing.Checkpointer(directory, every=1, keep=1)
        ckpt.save(1, state, {}, {})
        ckpt.wait()
        ckpt.close()
    return {"seconds": time.perf_counter() - start, "arrays": len(jax.tree.leaves(state))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["vit_tiny_fmnist", "pathformer_etth1_96"])
    parser.add_argument("--devices", type=int, default=8, help="fake CPU devices")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "HANDLER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(first_save_seconds(*args.worker)))
        return
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    print(f"first checkpoint save, {args.devices} CPU devices (fresh process each)")
    print(f"{'config':<24}{'arrays':>8}{'orbax default':>15}{'Checkpointer':>14}{'ratio':>8}")
    for config in args.configs:
        seconds = {}
        for handler in ("orbax_default", "checkpointer"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker", config, handler],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            seconds[handler] = result["seconds"]
        default, ours = seconds["orbax_default"], seconds["checkpointer"]
        print(
            f"{config:<24}{result['arrays']:>8}{default:>14.2f}s{ours:>13.2f}s"
            f"{default / ours:>7.1f}x"
        )


if __name__ == "__main__":
    main()
