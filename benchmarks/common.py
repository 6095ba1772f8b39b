"""Shared pieces of the benchmark scripts: machine facts, matmul peak, table + JSON output."""

import json
import os
import platform
import time

import jax
import jax.numpy as jnp


def machine() -> dict:
    import flax

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
    }


def matmul_peak_flops(sizes=(1024, 2048, 3072), repeats: int = 5) -> float:
    """Best f32 FLOP/s of a jitted square matmul on the default device (best of sizes x repeats)."""
    best = 0.0
    for n in sizes:
        a = jnp.ones((n, n), jnp.float32)
        f = jax.jit(lambda x: x @ x)
        f(a).block_until_ready()
        for _ in range(repeats):
            start = time.perf_counter()
            f(a).block_until_ready()
            best = max(best, 2 * n**3 / (time.perf_counter() - start))
    return best


def step_flops(trainer, local_batch: dict) -> float:
    """FLOPs of one compiled train step of `trainer` on `local_batch` (XLA cost analysis)."""
    from attnzoo.train_loops import partitioning

    with trainer._context():
        compiled = trainer._train_step.lower(
            trainer.sharded_abstract_state(), partitioning.global_batch(local_batch, trainer.mesh)
        ).compile()
    return float(compiled.cost_analysis()["flops"])


def report(title: str, rows: list[tuple[str, object]], out: str | None, extra: dict) -> None:
    """Prints a two-column table and writes the same figures (+ `extra`) as JSON to `out`."""
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}\n" + "-" * (width + 24))
    for key, value in rows:
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")
    if out:
        with open(out, "w") as f:
            json.dump({"title": title, **dict(rows), **extra}, f, indent=1, default=str)
        print(f"wrote {out}")
