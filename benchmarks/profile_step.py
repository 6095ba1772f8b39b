"""Where a train step's time goes: shares of matmuls, attention, norms, GELU, optimizer, copies.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/profile_step.py --out prof.json

Builds the `vit_tiny_fmnist` Trainer (`--patch 4 --batch 128`: the 49-token case), runs warm-up
steps, records `--steps` steps with `jax.profiler`, and classifies every XLA thunk of the
trace by the compiled HLO it runs: ops under `transpose(jvp(..))` are the backward, under
`jvp(..)` the forward, the rest the optimizer; dots, exponentials and copies of rank >= 4
(`[b, h, ...]`) are attention, other dots matmuls; tanh fusions and `mlp_dim`-wide
elementwise ones are GELU; reductions, rsqrt and `width`-wide broadcasts are normalisation;
pure data movement is layout. Also prints the main thread's CPU time for dispatching a
step and for fetching a batch. Classification is by shape and op, so it is approximate.
"""

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

import jax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import report  # noqa: E402
from vs_pytorch import case_config  # noqa: E402

from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.train_loops import partitioning  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402

_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\(")
_MOVES = {"parameter", "bitcast", "copy", "transpose", "slice", "concatenate", "broadcast"}
_MOVES |= {"reshape", "pad", "constant", "dynamic-slice", "dynamic-update-slice", "tuple"}


def _computations(hlo: str) -> dict[str, list[str]]:
    comps, current = {}, None
    for line in hlo.splitlines():
        header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if header:
            current = comps.setdefault(header.group(1), [])
        elif current is not None and line.startswith("  "):
            current.append(line)
    return comps


def _ops(comps: dict, name: str) -> set[str]:
    """Opcodes in computation `name` and the computations it calls."""
    out = set()
    for line in comps.get(name, []):
        m = _INSTRUCTION.match(line)
        if m:
            out.add(m.group(3))
        for called in re.findall(r"(?:calls|to_apply)=%?([\w.\-]+)", line):
            out |= _ops(comps, called)
    return out


def classify(line: str, comps: dict, width: int, mlp_dim: int) -> str:
    """The kind of work of one HLO instruction line."""
    _, shape, op = _INSTRUCTION.match(line).groups()
    called = re.findall(r"calls=%?([\w.\-]+)", line)
    ops = {op}.union(*(_ops(comps, c) for c in called))
    dims = [int(d) for d in re.findall(r"\d+", shape.split("[", 1)[-1].split("{")[0])]
    op_name = (re.search(r'op_name="([^"]*)"', line) or [None, ""])[1]
    if "jvp(" not in op_name:
        return "optimizer update + clipping"
    if len(dims) >= 4 and ("dot" in ops or "exponential" in ops or ops <= _MOVES):
        return "attention (einsums, softmax, head layouts)"
    if "dot" in ops or "convolution" in ops:
        return "matmuls (projections, MLP, patch embedding)"
    if "tanh" in ops or (dims[-1:] == [mlp_dim] and not ops & {"reduce", "copy", "transpose"}):
        return "GELU (and the MLP bias)"
    if "rsqrt" in ops or "reduce" in ops or ("broadcast" in ops and dims[-1:] == [width]):
        return "normalisation (LayerNorm, incl. broadcasts)"
    if ops <= _MOVES:
        return "layout copies, concatenations, slices"
    return "other elementwise (residual adds, biases)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=14)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    config = case_config(args.patch, args.batch)
    trainer = Trainer(config, tempfile.mkdtemp(prefix="profile_step_"))
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    batch = next(data)
    state = trainer.init_state()
    for _ in range(2):  # compile and warm up
        state, _ = trainer.train_step(state, batch)
    jax.block_until_ready(state)

    dispatch, fetch = [], []
    for _ in range(3):
        start = time.thread_time()
        state, _ = trainer.train_step(state, batch)
        dispatch.append(time.thread_time() - start)
        start = time.thread_time()
        next(data)
        fetch.append(time.thread_time() - start)
    jax.block_until_ready(state)

    trace_dir = tempfile.mkdtemp(prefix="profile_step_trace_")
    jax.profiler.start_trace(trace_dir)
    for _ in range(args.steps):
        state, _ = trainer.train_step(state, batch)
    jax.block_until_ready(state)
    jax.profiler.stop_trace()
    trace = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
    per_step = collections.Counter()
    for event in json.load(gzip.open(trace))["traceEvents"]:
        if event.get("ph") == "X":
            per_step[event["name"]] += event["dur"] / 1e3 / args.steps  # ms

    with trainer._context():
        hlo = (
            trainer._train_step.lower(
                trainer.sharded_abstract_state(), partitioning.global_batch(batch, trainer.mesh)
            )
            .compile()
            .as_text()
        )
    comps = _computations(hlo)
    shares = collections.Counter()
    for line in hlo.splitlines():
        m = _INSTRUCTION.match(line)
        if m and m.group(1) in per_step:
            kind = classify(line, comps, config.model.width, config.model.mlp_dim)
            shares[kind] += per_step[m.group(1)]
    total = sum(shares.values())
    rows = [(f"{kind} (%)", 100 * ms / total) for kind, ms in shares.most_common()]
    rows += [
        ("thunk time per step (ms)", total),
        ("python dispatch, main-thread CPU ms / step", 1e3 * min(dispatch)),
        ("host input, main-thread CPU ms / batch", 1e3 * min(fetch)),
    ]
    report(
        f"train step profile, {args.patch}x{args.patch} patches, batch {args.batch}",
        rows,
        args.out,
        {"args": vars(args)},
    )


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
