"""Shared pieces of the benchmark scripts: machine facts, matmul peak, table + JSON output."""

import json
import math
import os
import platform
import statistics
import time

import jax
import jax.extend
import jax.numpy as jnp

from attnzoo.train_loops.metrics_writer import read_metrics


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


def _dot_flops(eqn) -> float:
    """2 x the multiply-adds of a `dot_general` or `conv_general_dilated` equation."""
    out = eqn.outvars[0].aval
    if eqn.primitive.name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return 2.0 * math.prod(out.shape) * math.prod(lhs[d] for d in lhs_contract)
    rhs = eqn.invars[1].aval.shape  # conv: kernel [*spatial, in / groups, out] in some order
    spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial) positions
    per_output = math.prod(rhs[d] for d in spec[1:])
    return 2.0 * math.prod(out.shape) * per_output


def _matmul_eqns(jaxpr, times: float = 1.0):
    """Yields `(eqn, times)` for every matrix product (`dot_general`, convolution) a jaxpr
    executes: loop bodies times their trip counts (`scan`'s length; a `while` with matmuls is
    refused, its trip count being unknown), `cond` at its costliest branch, every nested
    jaxpr (jit, remat, custom VJP) once per call."""
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in ("dot_general", "conv_general_dilated"):
            yield eqn, times
        elif name == "scan":
            yield from _matmul_eqns(eqn.params["jaxpr"].jaxpr, times * eqn.params["length"])
        elif name == "cond":
            branches = [list(_matmul_eqns(b.jaxpr, times)) for b in eqn.params["branches"]]
            yield from max(branches, key=lambda eqns: sum(_dot_flops(e) * n for e, n in eqns))
        elif name == "while":
            if next(_matmul_eqns(eqn.params["body_jaxpr"].jaxpr), None) is not None:
                raise ValueError("matmul_flops: a while loop with matmuls and no static trip count")
        else:
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        yield from _matmul_eqns(sub.jaxpr, times)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        yield from _matmul_eqns(sub, times)


def matmul_flops(jaxpr) -> float:
    """FLOPs of the matrix products a jaxpr executes (`_matmul_eqns`). XLA's cost analysis
    counts a loop body once, so a step with chunked attention or MLP loops read low there."""
    return sum(_dot_flops(eqn) * times for eqn, times in _matmul_eqns(jaxpr))


def step_dots(jaxpr) -> list[tuple[tuple, tuple, dict, float]]:
    """The distinct `dot_general`s a jaxpr executes, as `(lhs shape, rhs shape, params,
    times per execution)`, costliest first (convolutions are left out)."""
    counts, params = {}, {}
    for eqn, times in _matmul_eqns(jaxpr):
        if eqn.primitive.name != "dot_general":
            continue
        key = (eqn.invars[0].aval.shape, eqn.invars[1].aval.shape, str(eqn.params))
        counts[key] = counts.get(key, 0.0) + times
        params[key] = (dict(eqn.params), _dot_flops(eqn))
    order = sorted(counts, key=lambda k: -counts[k] * params[k][1])
    return [(k[0], k[1], params[k][0], counts[k]) for k in order]


def einsum_equation(lhs: tuple, rhs: tuple, dimension_numbers) -> str:
    """The `torch.einsum` equation of a `dot_general` (output: batch, lhs free, rhs free)."""
    (lc, rc), (lb, rb) = dimension_numbers
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    a = [next(letters) for _ in lhs]
    b = [None] * len(rhs)
    for i, j in zip(lc, rc, strict=True):
        b[j] = a[i]
    for i, j in zip(lb, rb, strict=True):
        b[j] = a[i]
    b = [x or next(letters) for x in b]
    out = [a[i] for i in lb]
    out += [a[i] for i in range(len(lhs)) if i not in lc and i not in lb]
    out += [b[j] for j in range(len(rhs)) if j not in rc and j not in rb]
    return f"{''.join(a)},{''.join(b)}->{''.join(out)}"


def step_jaxpr(trainer, local_batch: dict):
    """The jaxpr of one train step of `trainer` on `local_batch`."""
    from attnzoo.train_loops import partitioning

    with trainer._context():
        traced = trainer._train_step.trace(
            trainer.sharded_abstract_state(), partitioning.global_batch(local_batch, trainer.mesh)
        )
    return traced.jaxpr.jaxpr


def step_flops(trainer, local_batch: dict) -> float:
    """Matmul FLOPs of one train step of `trainer` on `local_batch` (`matmul_flops` of the
    step's jaxpr: the work to hold against the matmul peak)."""
    return matmul_flops(step_jaxpr(trainer, local_batch))


def step_efficiency(trainer, state, batch: dict, flops: float, rounds: int = 5, steps: int = 10):
    """`(state, fastest, median)`: per round, the matmul peak (`matmul_peak_flops` at 2048,
    best of 3) and `steps` train steps on `batch`, each timed to completion; the round's
    fractions are the fastest and the median step's FLOP/s (`flops` per step, from
    `step_flops`) over that peak. Rounds a few seconds long keep the machine's drifts (shared
    cores) out of the ratio; fastest against best hits neither side more. Report medians."""
    fastest, median = [], []
    for _ in range(rounds):
        peak = matmul_peak_flops(sizes=(2048,), repeats=3)
        seconds = []
        for _ in range(steps):
            start = time.perf_counter()
            state, metrics = trainer.train_step(state, batch)
            jax.block_until_ready(metrics["loss"])
            seconds.append(time.perf_counter() - start)
        fastest.append(flops / min(seconds) / peak)
        median.append(flops / statistics.median(seconds) / peak)
    return state, fastest, median


def logged_time(workdir: str, step: int, split: str) -> float:
    """Wall-clock time at which a run logged `split`'s evaluation of `step` (for the best
    step and the selection split: its checkpoint is saved right after)."""
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    return next(r["time"] for r in rows if r["step"] == step and r["split"] == split)


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
