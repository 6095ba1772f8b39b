"""attnzoo's train step against PyTorch + timm on the same model, data and CPU, side by side.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/vs_pytorch.py --out vs.json

The ViT-tiny of `vit_tiny_fmnist` (width 192, depth 12, 3 heads, MLP 768, mean
pooling, f32) on Fashion-MNIST batches, trained with AdamW + global-norm clipping, in
attnzoo's engine (`Trainer.train_step`: host batch -> device, forward, backward, clip,
update) and in timm (`VisionTransformer`, `create_optimizer_v2("adamw")`,
`clip_grad_norm_`), at 14x14 patches (4 tokens, batch 512) and 4x4 patches (49 tokens,
batch 128). PyTorch runs in its own environment, benchmarks/peers/.venv, which this script
creates on first use from benchmarks/peers/requirements.txt (CPU wheels); it never enters
the project's install.

The machine is shared and noisy, so the two frameworks alternate in one run (attnzoo,
timm, attnzoo, timm, ...; the idle one waits) and the table shows medians over the rounds.
Also printed: each framework's f32 matmul FLOP/s measured in the same run (JAX's once per
round, median), the step's matmul FLOPs (`common.matmul_flops`), its efficiency (achieved
FLOP/s / JAX matmul FLOP/s), and the host time the input pipeline takes per batch as a
share of the step; and the step's matrix products (every `dot_general` of its jaxpr, with
its multiplicity) each timed alone, in JAX as the step calls it and in PyTorch as
`torch.einsum`: their sum is a floor under attnzoo's step time, and batch / that sum a
bound on its images/s whatever the rest of the step costs.
Targets: attnzoo >= 1.2x timm's images/s at both patch sizes, >= 60% of the matmul FLOP/s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax import lax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    einsum_equation,
    machine,
    matmul_flops,
    matmul_peak_flops,
    report,
    step_dots,
    step_jaxpr,
)

from attnzoo.configs import load_config  # noqa: E402
from attnzoo.train_loops.trainer import Trainer  # noqa: E402

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")
PEER_VENV = os.path.join(PEERS, ".venv")
PEER_PYTHON = os.path.join(PEER_VENV, "bin", "python")
REQUIREMENTS = os.path.join(PEERS, "requirements.txt")
CASES = {"14x14": (14, 512), "4x4": (4, 128)}  # name -> (patch size, batch size)


def ensure_peer_env() -> None:
    """Creates benchmarks/peers/.venv with the pinned CPU torch + timm (once per
    requirements.txt: a copy of the installed one is kept in the venv as a stamp)."""
    stamp = os.path.join(PEER_VENV, "requirements.txt")
    wanted = open(REQUIREMENTS).read()
    if os.path.exists(stamp) and open(stamp).read() == wanted:
        return
    print(f"creating the PyTorch peer environment in {PEER_VENV} ...", flush=True)
    subprocess.run(["python3.11", "-m", "venv", PEER_VENV], check=True)
    pip = [PEER_PYTHON, "-m", "pip", "install", "-q", "--no-deps", "-r", REQUIREMENTS]
    subprocess.run(pip, check=True)
    with open(stamp, "w") as f:
        f.write(wanted)


class TimmWorker:
    """The peer process (benchmarks/peers/timm_vit.py), one JSON request per line."""

    def __init__(self):
        script = os.path.join(PEERS, "timm_vit.py")
        self.proc = subprocess.Popen(
            [PEER_PYTHON, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __call__(self, cmd: str, **kwargs) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the timm peer exited (code {self.proc.wait()}) during {cmd!r}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        self.proc.wait()


def case_config(patch: int, batch: int):
    config = load_config("vit_tiny_fmnist")
    config.model.patch_size = patch
    config.train.update(batch_size=batch, eval_batch_size=batch)
    # timm's side trains with AdamW: so does ours here (the config itself trains with Muon)
    config.optimizer = ml_collections.ConfigDict(
        dict(name="adamw", learning_rate=2e-3, weight_decay=0.05, clip_norm=1.0)
    )
    config.mesh.shape = (1, 1, 1)  # one device: the peer runs in one process too
    return config


def seconds_per_call(f, *args, repeats: int = 7) -> float:
    """Median seconds of `f(*args)` to completion over `repeats` calls, after two."""
    jax.block_until_ready((f(*args), f(*args)))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def dots_alone(dots, peer: "TimmWorker") -> tuple[float, float]:
    """Seconds that the step's matrix products (`common.step_dots`) take per step when each
    runs alone, `(in JAX as the step calls them, in PyTorch as torch.einsum)`."""
    rng = np.random.default_rng(0)
    ours = theirs = 0.0
    for lhs, rhs, params, times in dots:
        a = jnp.asarray(rng.standard_normal(lhs, np.float32))
        b = jnp.asarray(rng.standard_normal(rhs, np.float32))
        dot = jax.jit(lambda a, b, params=params: lax.dot_general_p.bind(a, b, **params))
        ours += times * seconds_per_call(dot, a, b)
        equation = einsum_equation(lhs, rhs, params["dimension_numbers"])
        theirs += times * peer("dot", equation=equation, lhs=lhs, rhs=rhs)["seconds"]
    return ours, theirs


def run_case(name: str, peer: TimmWorker, rounds: int, steps: int) -> tuple[dict, dict]:
    """`(figures, per-round detail)` of one case, attnzoo and timm alternating."""
    patch, batch = CASES[name]
    config = case_config(patch, batch)
    trainer = Trainer(config, tempfile.mkdtemp(prefix="vs_pytorch_"))
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    next(data)  # the first batch loads the split into memory
    start = time.perf_counter()
    batches = [next(data) for _ in range(8)]
    host_s = (time.perf_counter() - start) / len(batches)  # input pipeline time per batch

    with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as f:
        np.savez(f, **{k: np.stack([b[k] for b in batches]) for k in ("image", "label")})
    h, w, c = batches[0]["image"].shape[1:]
    model = {**config.model.to_dict(), "image_size": (h, w), "in_channels": c, "num_classes": 10}
    opt = config.optimizer
    info = peer(
        "setup",
        model=model,
        batches=f.name,
        lr=opt.learning_rate,
        weight_decay=opt.weight_decay,
        clip_norm=opt.clip_norm,
    )
    os.remove(f.name)

    jaxpr = step_jaxpr(trainer, batches[0])
    flops = matmul_flops(jaxpr)
    jax_dots_s, torch_dots_s = dots_alone(step_dots(jaxpr), peer)
    state = trainer.init_state()
    params = nnx.state(trainer.model(state["model"]), nnx.Param)
    ours_params = sum(x.size for x in jax.tree.leaves(params))

    def ours(n: int) -> float:
        nonlocal state
        start = time.perf_counter()
        for i in range(n):
            state, _ = trainer.train_step(state, batches[i % len(batches)])
        jax.block_until_ready(state)
        return time.perf_counter() - start

    ours(2), peer("steps", n=2)  # compile / warm up
    ours_ips, peer_ips, peaks = [], [], []
    for _ in range(rounds):  # the matmul rate too, as the load on the machine varies
        peaks.append(matmul_peak_flops(sizes=(2048,), repeats=3))
        ours_ips.append(steps * batch / ours(steps))
        peer_ips.append(steps * batch / peer("steps", n=steps)["seconds"])
    step_s = batch / statistics.median(ours_ips)
    achieved, peak = flops / step_s, statistics.median(peaks)
    return {
        "attnzoo images/s": statistics.median(ours_ips),
        "timm images/s": statistics.median(peer_ips),
        "ratio attnzoo / timm": statistics.median(ours_ips) / statistics.median(peer_ips),
        "step GFLOP (XLA)": flops / 1e9,
        "JAX f32 matmul GFLOP/s (2048^2)": peak / 1e9,
        "attnzoo achieved GFLOP/s": achieved / 1e9,
        "fraction of matmul FLOP/s": achieved / peak,
        "host input time / step": host_s / step_s,
        "the step's matmuls alone, s: JAX / PyTorch": f"{jax_dots_s:.3f} / {torch_dots_s:.3f}",
        "attnzoo / timm step, s": f"{step_s:.3f} / {batch / statistics.median(peer_ips):.3f}",
        "bound: batch / JAX matmuls alone, / timm images/s": batch
        / jax_dots_s
        / statistics.median(peer_ips),
        "params attnzoo / timm": f"{ours_params} / {info['params']}",
    }, {"attnzoo images/s": ours_ips, "timm images/s": peer_ips, "matmul FLOP/s": peaks, **info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="14x14,4x4", help=f"comma-separated of {list(CASES)}")
    parser.add_argument("--rounds", type=int, default=5, help="alternations per case")
    parser.add_argument("--steps", type=int, default=3, help="train steps per round")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    cases = args.cases.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    if args.rounds < 1 or args.steps < 1:
        parser.error("--rounds and --steps must be >= 1")

    ensure_peer_env()
    peer = TimmWorker()
    try:
        peer_peak = peer("matmul", n=2048)["flops"]
        results = {c: run_case(c, peer, args.rounds, args.steps) for c in cases}
    finally:
        peer.close()
    rows = [("PyTorch f32 matmul GFLOP/s (2048^2)", peer_peak / 1e9)]
    for case, (figures, _) in results.items():
        rows += [(f"{case}: {k}", v) for k, v in figures.items()]
    report(
        "ViT-tiny train step: attnzoo vs PyTorch + timm (medians of interleaved rounds)",
        rows,
        args.out,
        {
            "machine": machine(),
            "rounds": {c: r for c, (_, r) in results.items()},
            "args": vars(args),
        },
    )


if __name__ == "__main__":
    main()
