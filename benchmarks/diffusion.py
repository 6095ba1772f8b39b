"""Diffusion benchmarks: Scale-DiT vs dense attention cost, and DiT-tiny sample quality.

    python benchmarks/diffusion.py --part attention --out diffusion_attention.json
    python benchmarks/diffusion.py --part quality --dit-steps 2400 --classifier-steps 620 \
        --num-samples 1000 --out diffusion_quality.json

attention: one attention layer (4 heads of 32, batch 1) over a high-res token grid of
64², 128², 256² tokens, dense (`mask=None`) against Scale-DiT's joint sequence (radius-8
window in window-first order + the low-res tokens of a 4x smaller grid), impl="xla":
compiled peak memory (temporaries + output, XLA's memory analysis) and forward time (run
only where that peak is below `--max-mib`). Dense impl="xla" runs in cache-sized chunks
(never the [N, N] scores); the peak of dense attention with materialised scores
(impl="reference", compiled, not run) is reported beside it. Target (issue 10): Scale-DiT
>= 2x faster with <= 1/4 of dense attention's peak memory at the largest grid.

quality: trains `dit_tiny_fmnist` for `--dit-steps` and the zoo classifier
(`vit_tiny_fmnist`) for `--classifier-steps`, samples `--num-samples` guided images (classes
cycling), and reports FID-FMNIST (Fréchet distance of the classifier's pooled features; not
Inception FID), precision/recall against test images, the classifier's agreement with the
requested class (target >= 80%), and the floor (train vs test images). Writes the sample grid.
`--dit-run DIR` / `--classifier-run DIR` evaluate finished runs of those configs instead of
training them here (their training time is then not reported).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from common import machine, report  # noqa: E402

from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402
from attnzoo.layers.anchor_mask import LocalWithAnchors  # noqa: E402
from attnzoo.layers.attention import attend  # noqa: E402
from attnzoo.layers.masks import LocalWindow2D  # noqa: E402


def attention_cost(side: int, mask, *, max_mib: float, impl="xla", heads=4, head_dim=32):
    """(forward seconds or None when not run, peak MiB) of one attention layer."""
    n = side * side + (mask.num_anchors if mask is not None else 0)
    q = jax.ShapeDtypeStruct((1, n, heads, head_dim), jnp.float32)
    fn = jax.jit(lambda q, k, v: attend(q, k, v, mask=mask, impl=impl))
    compiled = fn.lower(q, q, q).compile()
    memory = compiled.memory_analysis()
    mib = (memory.temp_size_in_bytes + memory.output_size_in_bytes) / 2**20
    if mib > max_mib:
        return None, mib
    x = jax.random.normal(jax.random.key(0), q.shape)
    compiled(x, x, x).block_until_ready()
    start = time.perf_counter()
    compiled(x, x, x).block_until_ready()
    return time.perf_counter() - start, mib


def part_attention(args) -> list:
    rows = []
    for side in (64, 128, 256):
        low = (side // 4) ** 2
        scale = LocalWithAnchors(LocalWindow2D((side, side), 8, window=(16, 16)), low)
        t_dense, m_dense = attention_cost(side, None, max_mib=args.max_mib)
        t_scale, m_scale = attention_cost(side, scale, max_mib=args.max_mib)
        _, m_materialised = attention_cost(side, None, max_mib=0, impl="reference")
        skipped = f"not run (peak > {args.max_mib:g} MiB)"
        rows += [
            (f"{side}² dense time s", skipped if t_dense is None else t_dense),
            (f"{side}² scale-dit time s", skipped if t_scale is None else t_scale),
            (f"{side}² speed-up", t_dense / t_scale if t_dense and t_scale else "n/a"),
            (f"{side}² dense peak MiB", m_dense),
            (f"{side}² dense, materialised scores, peak MiB", m_materialised),
            (f"{side}² scale-dit peak MiB", m_scale),
            (f"{side}² memory ratio to dense", m_scale / m_dense),
            (f"{side}² memory ratio to materialised dense", m_scale / m_materialised),
        ]
    return rows


def _train(name: str, steps: int, workdir: str, existing: str | None):
    """(trainer, model, train seconds) of config `name` trained `steps` in `workdir`, or of
    the finished run in `existing` (seconds None: not timed here)."""
    from attnzoo.configs import load_config
    from attnzoo.train_loops.checkpointing import Checkpointer
    from attnzoo.train_loops.trainer import Trainer

    config = load_config(name)
    seconds = None
    if existing:
        trainer = Trainer(config, existing)
    else:
        config.train.update(steps=steps, checkpoint_every=steps, eval_every=0)
        config.schedule.warmup_steps = min(config.schedule.warmup_steps, steps // 5)
        trainer = Trainer(config, workdir)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
    checkpointer = Checkpointer(trainer.workdir, every=1, keep=2)
    step = checkpointer.latest_step()
    if step is None:
        raise SystemExit(f"no checkpoint in {trainer.workdir}")
    state, _, _ = trainer.restore(checkpointer, step)
    checkpointer.close()
    return trainer, trainer.model(trainer.inference_state(state)), seconds, step


def part_quality(args) -> list:
    from flax import nnx

    from attnzoo import data
    from attnzoo.eval.diffusion import frechet_distance, precision_recall, save_grid

    info = data.dataset_info("fashion_mnist")
    dit_trainer, dit, dit_seconds, dit_steps = _train(
        "dit_tiny_fmnist", args.dit_steps, os.path.join(args.workdir, "dit"), args.dit_run
    )
    _, classifier, clf_seconds, clf_steps = _train(
        "vit_tiny_fmnist",
        args.classifier_steps,
        os.path.join(args.workdir, "classifier"),
        args.classifier_run,
    )
    dit_trainer.config.diffusion.sample_steps = args.sample_steps
    if args.guidance is not None:
        dit_trainer.config.diffusion.guidance = args.guidance
    labels = np.arange(args.num_samples) % info["num_classes"]
    start = time.perf_counter()
    samples = np.concatenate(
        [
            dit_trainer.family.generate(
                dit, labels[i : i + 100], num=len(labels[i : i + 100]), seed=i
            )
            for i in range(0, len(labels), 100)
        ]
    )
    sample_seconds = time.perf_counter() - start
    os.makedirs(args.workdir, exist_ok=True)
    save_grid(samples[:100], os.path.join(args.workdir, "dit_tiny_grid.png"), columns=10)

    def standardised(images_pm1):  # [-1, 1] 32x32 -> the classifier's 28x28 input
        pixels = (images_pm1[:, 2:30, 2:30] + 1.0) / 2.0
        return (pixels - info["mean"]) / info["std"]

    features = nnx.jit(lambda m, x: (m.features(x), m(x).argmax(-1)))

    def embed(images):
        out = [features(classifier, images[i : i + 250]) for i in range(0, len(images), 250)]
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    def real(split):  # (images, labels) of the first `--num-samples` of `split`
        batches = data.make_dataset(
            "fashion_mnist", f"{split}[:{args.num_samples}]", batch_size=250, shuffle=False,
            repeat=False, seed=0, drop_remainder=False,
        )  # fmt: skip
        batches = list(batches)
        return tuple(np.concatenate([b[k] for b in batches]) for k in ("image", "label"))

    fake_f, fake_pred = embed(standardised(samples))
    test_images, test_labels = real("test")
    test_f, test_pred = embed(test_images)
    train_f, _ = embed(real("train")[0])
    precision, recall = precision_recall(test_f, fake_f)
    return [
        ("dit run", args.dit_run or "trained here"),
        ("dit train steps", dit_steps),
        ("dit train s", "not timed here" if dit_seconds is None else dit_seconds),
        ("classifier run", args.classifier_run or "trained here"),
        ("classifier train steps", clf_steps),
        ("classifier train s", "not timed here" if clf_seconds is None else clf_seconds),
        (f"classifier accuracy on test[:{args.num_samples}]", (test_pred == test_labels).mean()),
        ("samples", args.num_samples),
        ("sampling steps (ddim)", args.sample_steps),
        ("guidance", dit_trainer.config.diffusion.guidance),
        ("sampling s", sample_seconds),
        ("FID-FMNIST samples vs test", frechet_distance(fake_f, test_f)),
        ("FID-FMNIST floor train vs test", frechet_distance(train_f, test_f)),
        ("precision", precision),
        ("recall", recall),
        ("classifier agrees with class", float((fake_pred == labels).mean())),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("attention", "quality", "all"), default="all")
    parser.add_argument("--max-mib", type=float, default=4096.0)
    parser.add_argument("--dit-steps", type=int, default=300)
    parser.add_argument("--classifier-steps", type=int, default=200)
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=None, help="default: the config's")
    parser.add_argument("--workdir", default="runs/benchmark_diffusion")
    parser.add_argument("--dit-run", default=None, help="evaluate this finished run instead")
    parser.add_argument("--classifier-run", default=None, help="use this finished run instead")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    rows = []
    if args.part in ("attention", "all"):
        rows += part_attention(args)
    if args.part in ("quality", "all"):
        rows += part_quality(args)
    report("Diffusion (issue 10)", rows, args.out, {"machine": machine(), "args": vars(args)})


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
