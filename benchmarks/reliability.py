"""Reliability harness: malformed invocations, random kills, failing checkpoint writes.

    python benchmarks/reliability.py [--parts abc] [--kills 10] [--out reliability.json]

(a) every case of `invocation_cases()` (train and eval; `sample` joins when it exists) must
    exit nonzero with one `error:` line, no traceback, an unchanged good run's workdir and
    no new workdir; (b) runs killed with SIGKILL at random moments (steps, evaluation,
    checkpoint writes) are resumed and must end with the uninterrupted run's parameters and
    final metrics, bit for bit; (c) checkpoint writes that fail (file size limit: a full
    disk for files above 16 KiB) must end in one line, keeping the previous checkpoint.

A family that lands adds its configs to `FAMILY_CASES` (generic cases run on each config).
"""

import argparse
import dataclasses
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ("attnzoo.train", "attnzoo.eval")  # `attnzoo.sample` has its own cases below

# config -> overrides that only this config's family must refuse
FAMILY_CASES = {
    "vit_tiny_digits:smoke": {
        "patch larger than image": ["--config.model.patch_size=16"],
        "patch not dividing image": ["--config.model.patch_size=3"],
        "width not divisible by heads": ["--config.model.width=30", "--config.model.num_heads=4"],
        "unknown pool": ["--config.model.pool=avg"],
        "unknown posemb": ["--config.model.posemb=rope"],
        "negative depth": ["--config.model.depth=-1"],
        "dropout above 1": ["--config.model.dropout=1.5"],
    },
    "pathformer_demo:smoke": {
        "top-k above the experts": ["--config.model.k=9"],
        "patch not dividing the input": ["--config.model.patch_sizes=((7, 5),)"],
        "zero horizon": ["--config.data.horizon=0"],
        "unknown loss": ["--config.train.loss=huber"],
        "unknown selection split": ["--config.select.split=valid"],
        "unknown selection mode": ["--config.select.mode=best"],
        "negative patience": ["--config.select.patience=-1"],
    },
    "vit_spa_fmnist:smoke": {
        "capacity above 1": ["--config.model.spa_capacity=1.5"],
    },
    "biformer_tiny_fmnist:smoke": {
        "stage lists of different lengths": ["--config.model.depths=(1, 1, 1, 1)"],
    },
    "vit_tiny_fmnist_to_digits:smoke": {
        "unknown init_from source": ["--config.init_from.path=vit_tiny.nope"],
    },
    "pathformer_etth1_to_etth2_96:smoke": {
        "init_from a tag of another model": ["--config.init_from.path=vit_tiny.fmnist_p4"],
    },
    "lm_tiny_shakespeare_to_pydoc:smoke": {
        "init_from a tag of another model": ["--config.init_from.path=pathformer.etth1_96"],
    },
    "tppgaze_nus:smoke": {
        "patch not dividing image": ["--config.model.patch_size=48"],
        "no position components": ["--config.model.position_components=0"],
        "not a scanpath dataset": ["--config.data.name=digits"],
        "init_from.into without a path": ["--config.init_from.into=backbone"],
        "init_from.into a missing submodule": [
            "--config.init_from.path=vit_tiny.nope",
            "--config.init_from.into=nope",
        ],
    },
    "oat_nus:smoke": {
        "no decoder layer": ["--config.model.decoder_depth=0"],
        "negative beam": ["--config.sample.beam_size=-1"],
        "zero sampling temperature": ["--config.sample.temperature=0.0"],
    },
    "lm_tiny_pydoc:smoke": {
        "unknown attention kind": ["--config.model.attention=dens"],
        "unknown mlp kind": ["--config.model.mlp=relu2"],
        "zero context": ["--config.data.context_len=0"],
        "unknown tokenizer": ["--config.data.tokenizer=wordpiece"],
        "bpe vocabulary not above the bytes": [
            "--config.data.tokenizer=bpe",
            "--config.data.vocab_size=100",
        ],
        "heads not a multiple of kv heads": ["--config.model.num_kv_heads=3"],
        "context longer than the text": ["--config.data.context_len=10000000"],
    },
    "gman_losloop:smoke": {
        "unknown spatial embedding": ["--config.data.spatial_embedding.method=deepwalk"],
        "zero heads": ["--config.model.num_heads=0"],
        "negative node2vec p": ["--config.data.spatial_embedding.p=-1.0"],
    },
    "lm_motif_tiny_shakespeare:smoke": {
        "negative QK-Clip threshold": ["--config.optimizer.qk_clip=-1.0"],
    },
    "lm_moba_long:smoke": {
        "MoBA selecting no block": ["--config.model.attention_options.moba.top_k=0"],
    },
    "gman_losloop_lap:smoke": {
        "zero-dimensional spatial embedding": ["--config.data.spatial_embedding.dim=0"],
    },
    "scale_dit_tiny_fmnist:smoke": {
        "negative window radius": ["--config.model.radius=-1"],
    },
    "dit_s2_imagenet_latent:smoke": {
        "patch not dividing the input": ["--config.model.patch_size=3"],
        "unknown prediction": ["--config.diffusion.prediction=x0"],
        "EMA decay of 1": ["--config.train.ema_decay=1.0"],
    },
}

# overrides every config must refuse
GENERIC_OVERRIDES = {
    "unknown field": ["--config.train.stepz=1"],
    "ill-typed value": ["--config.train.steps=ten"],
    "section overridden": ["--config.train=3"],
    "override without value": ["--config.train.steps"],
    "negative steps": ["--config.train.steps=-5"],
    "zero steps": ["--config.train.steps=0"],
    "zero batch": ["--config.train.batch_size=0"],
    "negative batch": ["--config.train.batch_size=-16"],
    "zero eval batch": ["--config.train.eval_batch_size=0"],
    "zero log interval": ["--config.train.log_every=0"],
    "zero checkpoint interval": ["--config.train.checkpoint_every=0"],
    "zero checkpoints kept": ["--config.train.keep_checkpoints=0"],
    "negative eval interval": ["--config.train.eval_every=-1"],
    "negative warmup": ["--config.schedule.warmup_steps=-1"],
    "zero learning rate": ["--config.optimizer.learning_rate=0"],
    "negative learning rate": ["--config.optimizer.learning_rate=-1e-3"],
    "nan learning rate": ["--config.optimizer.learning_rate=nan"],
    "negative weight decay": ["--config.optimizer.weight_decay=-1"],
    "label smoothing above 1": ["--config.train.label_smoothing=1.5"],
    "unknown optimizer": ["--config.optimizer.name=adam"],
    "unknown schedule": ["--config.schedule.name=cosine"],
    "mesh larger than devices": ["--config.mesh.shape=(64,1,1)"],
    "mesh not dividing devices": ["--config.mesh.shape=(3,-1,1)"],
    "mesh with two -1": ["--config.mesh.shape=(-1,-1,1)"],
    "mesh rank != axes": ["--config.mesh.shape=(8,1)"],
    "batch the mesh cannot split": ["--config.train.batch_size=12"],
    "eval batch the mesh cannot split": ["--config.train.eval_batch_size=20"],
    "unknown model": ["--config.model.name=vit_tiyn"],
    "unknown dataset": ["--config.data.name=digitz"],
    "unknown family": ["--config.family=lanugage"],
    "empty eval split": ["--config.data.eval_split=test[5:5]"],
    "malformed split": ["--config.data.eval_split=test[:"],
    "unknown train split": ["--config.data.train_split=validation"],
    "bad process count": ["--num_processes=two"],
    "unknown flag": ["--frobnicate=1"],
}


@dataclasses.dataclass
class Case:
    name: str
    module: str
    args: list[str]
    workdir: str | None = "fresh"  # "fresh" (must stay absent), "good" (unchanged) or None
    rc: int = 2


def invocation_cases(bad_files: dict[str, str]) -> list[Case]:
    """The table of (a); `bad_files` maps kind -> path of a broken config file."""
    cases = []
    for module in MODULES:

        def add(name, args, *, module=module, **kw):
            cases.append(Case(f"{module.split('.')[-1]}: {name}", module, args, **kw))

        add("no --config", [])
        add("no --workdir", ["--config=vit_tiny_digits:smoke"], workdir=None)
        add("not a config (/etc/passwd)", ["--config=/etc/passwd"])
        add("missing config file", ["--config=nowhere/none.py"])
        add("unknown config name", ["--config=vit_tiny_digit"])
        for kind, path in bad_files.items():
            add(f"config file {kind}", [f"--config={path}"])
        for config, family_cases in FAMILY_CASES.items():
            add(f"{config}: unknown variant", [f"--config={config.split(':')[0]}:tiny"])
            for name, args in {**GENERIC_OVERRIDES, **family_cases}.items():
                add(f"{config}: {name}", [f"--config={config}", *args])
            for field, value in (("model.width", "64"), ("data.name", "fashion_mnist")):
                add(
                    f"{config}: good workdir, different {field}",
                    [f"--config={config}", f"--config.{field}={value}"],
                    workdir="good",
                )
    good = ["--config=vit_tiny_digits:smoke"]
    sample = "attnzoo.sample"
    cases += [
        Case("sample: no --workdir", sample, [], workdir=None),
        Case("sample: no checkpoint in workdir", sample, [], rc=1),
        Case("sample: a family without a sampler", sample, [], workdir="good", rc=1),
        Case("sample: zero samples", sample, ["--num=0"], workdir="good"),
        Case("sample: unknown split", sample, ["--split=bogus"], workdir="good"),
        Case("sample: override without --config", sample, ["--config.seed=1"], workdir="good"),
        Case("sample: bad override", sample, [*good, "--config.train.steps=-5"], workdir="good"),
        Case("sample: different model", sample, [*good, "--config.model.width=64"], workdir="good"),
        Case("eval: no checkpoint in workdir", "attnzoo.eval", good, rc=1),
        Case("eval: unknown split", "attnzoo.eval", [*good, "--split=bogus"], workdir="good"),
        Case("eval: empty split", "attnzoo.eval", [*good, "--split=test[3:3]"], workdir="good"),
    ]
    return cases


def env(devices: int = 8, *, compile_cache: bool = True) -> dict:
    """The CLIs' environment; without `compile_cache` they write no jax compilation cache
    (where writes fail on purpose, its warning is not the run's)."""
    out = dict(os.environ)
    out.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    if not compile_cache:
        out.pop("JAX_COMPILATION_CACHE_DIR", None)
    return out


def invoke(module: str, args: list[str], *, timeout: int = 600, preexec=None):
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env(compile_cache=preexec is None),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )


def tree_checksum(path: str) -> str:
    """sha256 over every file's relative path and bytes under `path`."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def one_error_line(result) -> str | None:
    """None if `result` failed cleanly (one `error:` line, no traceback), else why not."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if "Traceback" in result.stderr + result.stdout:
        return "traceback"
    if len(lines) != 1:
        return f"{len(lines)} stderr lines"
    if not lines[0].startswith("error:"):
        return "no 'error:' prefix"
    return None


def write_bad_configs(directory: str) -> dict[str, str]:
    files = {
        "without get_config": "x = 1\n",
        "with a syntax error": "def get_config(:\n",
        "whose get_config raises": "def get_config(arg=None):\n    return {}['missing']\n",
        "returning a dict": "def get_config(arg=None):\n    return {'train': 1}\n",
    }
    paths = {}
    for i, (kind, text) in enumerate(files.items()):
        paths[kind] = os.path.join(directory, f"bad_{i}.py")
        with open(paths[kind], "w") as f:
            f.write(text)
    return paths


GOOD_RUN = ["--config=vit_tiny_digits:smoke", "--config.train.steps=2"]


def make_good_run(workdir: str) -> None:
    result = invoke("attnzoo.train", [*GOOD_RUN, f"--workdir={workdir}"])
    if result.returncode:
        raise SystemExit(f"the good run failed:\n{result.stderr[-3000:]}")


def run_case(case: Case, good: str, scratch: str) -> dict:
    fresh = os.path.join(scratch, "fresh")
    workdir = {"good": good, "fresh": fresh, None: None}[case.workdir]
    args = case.args + ([f"--workdir={workdir}"] if workdir else [])
    before = tree_checksum(good)
    result = invoke(case.module, args)
    problems = [p for p in [one_error_line(result)] if p]
    if result.returncode != case.rc:
        problems.append(f"exit {result.returncode}, expected {case.rc}")
    if tree_checksum(good) != before:
        problems.append("good workdir modified")
    if os.path.exists(fresh):
        problems.append("wrote into a fresh workdir")
        shutil.rmtree(fresh)
    return {"case": case.name, "ok": not problems, "problems": problems, "stderr": result.stderr}


def part_a(scratch: str, good: str, cases: list[Case] | None = None) -> dict:
    cases = cases if cases is not None else invocation_cases(write_bad_configs(scratch))
    results = []
    for case in cases:
        results.append(run_case(case, good, scratch))
        status = "ok  " if results[-1]["ok"] else "FAIL"
        line = results[-1]["stderr"].strip().splitlines()[-1:] or [""]
        print(f"  {status} {case.name}: {'; '.join(results[-1]['problems']) or line[0][:110]}")
    return {
        "cases": len(results),
        "clean": sum(r["ok"] for r in results),
        "tracebacks": sum("traceback" in r["problems"] for r in results),
        "good_workdir_modified": sum("good workdir modified" in r["problems"] for r in results),
        "failures": [r for r in results if not r["ok"]],
    }


# ----------------------------------------------------------------------------- (b) kills

KILL_RUN = [
    "--config=vit_tiny_digits:smoke",
    "--config.train.steps=40",
    "--config.train.log_every=5",
    "--config.train.eval_every=10",
    "--config.train.checkpoint_every=5",
    "--config.train.batch_size=32",
    "--config.train.eval_batch_size=32",
    "--config.model.dropout=0.1",
    "--config.data.augment=true",
]


def final_state(workdir: str) -> tuple[dict, dict]:
    """(flat model params of the latest checkpoint, final_eval.json)."""
    import numpy as np

    from attnzoo.zoo.pretrained import read_model_params

    def flat(tree, prefix=""):
        out = {}
        for k, v in tree.items():
            out.update(flat(v, f"{prefix}{k}/") if isinstance(v, dict) else {prefix + k: v})
        return out

    with open(os.path.join(workdir, "final_eval.json")) as f:
        metrics = json.load(f)
    return {k: np.asarray(v) for k, v in flat(read_model_params(workdir)).items()}, metrics


def identical(a: tuple[dict, dict], b: tuple[dict, dict]) -> bool:
    import numpy as np

    return (
        a[1] == b[1]
        and a[0].keys() == b[0].keys()
        and all(np.array_equal(a[0][k], b[0][k]) for k in a[0])
    )


def _logged_step(workdir: str) -> int:
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            return max((json.loads(line)["step"] for line in f if line.endswith("\n")), default=0)
    except (OSError, ValueError):
        return 0


def kill_once(workdir: str, *, at: float | None, rng: random.Random) -> str:
    """Starts the run and SIGKILLs it a random 0-1 s after it logged step `at` (robust to
    machine load), or (None) as soon as its n-th checkpoint write is in flight. Returns
    where it was killed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnzoo.train", *KILL_RUN, f"--workdir={workdir}"],
        cwd=REPO,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpts, deadline = os.path.join(workdir, "checkpoints"), None
    wanted_writes, delay = rng.randint(1, 6), rng.uniform(0, 1)
    seen = set()
    while proc.poll() is None:
        writing = [d for d in os.listdir(ckpts) if "tmp" in d] if os.path.isdir(ckpts) else []
        seen.update(writing)
        if at is not None and deadline is None and _logged_step(workdir) >= at:
            deadline = time.time() + delay
        if (deadline is not None and time.time() >= deadline) or (
            at is None and len(seen) >= wanted_writes
        ):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "checkpoint write" if writing else "step/eval"
        time.sleep(0.005)
    return "finished before the kill"


def part_b(scratch: str, kills: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    reference = os.path.join(scratch, "reference")
    start = time.time()
    result = invoke("attnzoo.train", [*KILL_RUN, f"--workdir={reference}"])
    duration = time.time() - start
    if result.returncode:
        raise SystemExit(f"the reference run failed:\n{result.stderr[-3000:]}")
    expected = final_state(reference)
    rows = []
    for i in range(kills):
        workdir = os.path.join(scratch, f"killed_{i}")
        at = None if i % 3 == 2 else rng.randrange(5, 40, 5)  # a logged step
        where = kill_once(workdir, at=at, rng=rng)
        resumed = invoke("attnzoo.train", [*KILL_RUN, f"--workdir={workdir}"])
        same = resumed.returncode == 0 and identical(final_state(workdir), expected)
        rows.append({"kill": i, "after_step": at, "where": where, "identical": same})
        shown = f"after step {at}" if at else "at a checkpoint write"
        print(f"  kill {i}: {where} {shown}: {'identical' if same else 'DIFFERENT'}")
        if resumed.returncode:
            print(resumed.stderr[-2000:])
        shutil.rmtree(workdir, ignore_errors=True)
    killed = [r for r in rows if r["where"] != "finished before the kill"]
    return {
        "kills": len(killed),
        "identical": sum(r["identical"] for r in killed),
        "during_checkpoint_writes": sum(r["where"] == "checkpoint write" for r in killed),
        "reference_run_s": round(duration, 1),
        "rows": rows,
    }


# ----------------------------------------------------------------------------- (c) disk


def limit_file_size(limit: int = 16384):
    """preexec_fn: writes past `limit` bytes in one file fail (EFBIG), like a full disk."""

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def part_c(scratch: str, good: str) -> dict:
    workdir = os.path.join(scratch, "full_disk")
    shutil.copytree(good, workdir)
    kept = os.path.join(workdir, "checkpoints", "2")
    before = tree_checksum(kept)
    args = [*GOOD_RUN[:1], "--config.train.steps=4", f"--workdir={workdir}"]
    result = invoke("attnzoo.train", args, preexec=limit_file_size())
    problem = one_error_line(result)
    clear = problem is None and "could not write checkpoint" in result.stderr
    intact = tree_checksum(kept) == before
    evaluated = invoke("attnzoo.eval", [*GOOD_RUN[:1], f"--workdir={workdir}"]).returncode == 0
    return {
        "exit_code": result.returncode,
        "one_clear_line": clear,
        "message": result.stderr.strip()[:300],
        "previous_checkpoint_intact": intact,
        "previous_checkpoint_restores": evaluated,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="abc")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sys.path[:0] = [REPO, os.path.dirname(os.path.abspath(__file__))]  # this tree's attnzoo
    from common import machine, report

    figures, rows = {}, []
    with tempfile.TemporaryDirectory() as scratch:
        good = os.path.join(scratch, "good")
        make_good_run(good)
        if "a" in args.parts:
            a = figures["a"] = part_a(scratch, good)
            rows += [
                ("(a) malformed invocations", a["cases"]),
                ("(a) clean: nonzero exit, one line, nothing written", a["clean"]),
                ("(a) tracebacks", a["tracebacks"]),
                ("(a) good workdirs modified", a["good_workdir_modified"]),
            ]
        if "b" in args.parts:
            b = figures["b"] = part_b(scratch, args.kills)
            rows += [
                ("(b) SIGKILLs", b["kills"]),
                ("(b) of them during checkpoint writes", b["during_checkpoint_writes"]),
                ("(b) resumed to identical params + metrics", b["identical"]),
            ]
        if "c" in args.parts:
            c = figures["c"] = part_c(scratch, good)
            rows += [
                ("(c) failing writes: one clear line", c["one_clear_line"]),
                ("(c) previous checkpoint intact", c["previous_checkpoint_intact"]),
                ("(c) previous checkpoint restores", c["previous_checkpoint_restores"]),
            ]
    report("reliability", rows, args.out, {"machine": machine(), "details": figures})


if __name__ == "__main__":
    main()
