"""Shared test utilities."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tests run tiny programs whose time is mostly compilation: skipping LLVM's optimisation
# passes cuts the suite's CPU time by about a quarter (the numbers do not change).
FAST_COMPILE = "--xla_backend_optimization_level=0"


def cli_env(devices: int = 8, **extra: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}"
    env["JAX_PLATFORMS"] = "cpu"
    env["ATTNZOO_NO_HUGE_PAGES"] = "1"  # tiny runs: not worth a second interpreter start
    env.update(extra)
    return env


def cli(module: str, *args: str, devices: int = 8, timeout: int = 300, env: dict | None = None):
    """Runs `python -m module args...` in the repo; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=cli_env(devices, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def train_losses(workdir: str) -> dict[int, float]:
    """step -> train loss from a run's metrics.jsonl (the last row wins for a step)."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["loss"] for r in rows if r["split"] == "train"}


def flat_state(state) -> dict:
    """`{"a/b/kernel": numpy array}` of an `nnx.State` (the names releases use)."""
    import jax
    import numpy as np
    from flax import nnx

    leaves = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0]
    return {"/".join(str(getattr(k, "key", k)) for k in p): np.asarray(v) for p, v in leaves}
