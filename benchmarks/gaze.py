"""Scanpath prediction on the NUS scene test images: every metric for the trained models,
the centre-bias and training-density baselines and human inter-observer agreement.

    ATTNZOO_DATA_DIR=../shared/data .venv/bin/python benchmarks/gaze.py \
        --tppgaze=runs/tppgaze_nus --oat=runs/oat_nus [--per_image=10] --out gaze.json

A model is read from its run's best checkpoint (else its latest). Protocol: on each test
image, `per_image` generated scanpaths are each compared with every human scanpath of the
image, and the scores averaged (over pairs, then images); humans: each viewer against the
other viewers (the upper reference). Scores are in the original image's pixels, durations
in ms: MultiMatch (5 similarities), ScanMatch (12 × 8 grid, threshold 3.5, with and
without 50 ms temporal bins), sequence score (on the 12 × 8 cells), string-edit distance
(5 × 5 cells), DTW (in image diagonals) and NSS of the generated fixations on the image's
human fixation density (σ = 3% of the longer side; for humans, the other viewers' density).
Targets: both models above the centre bias on MultiMatch, ScanMatch and sequence score;
the better model closing at least half the centre-bias → human gap on ScanMatch. For each
of those metrics, each model's per-image difference from the centre bias is also printed
as its mean and standard error over the images (how far a margin is from noise).

Sampling temperature: each model is scored at τ = 1 (its density as trained) and at the
τ of `--temperatures` with the best ScanMatch on the validation images; the centre bias
likewise at its fitted std and at the std scale chosen the same way (ScanMatch rewards
concentrated scanpaths, so a sharpened baseline is the fair reference for sharpened
models).
"""

import argparse
import functools
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, report  # noqa: E402

from attnzoo.data.scanpaths import human_scanpaths, load_split  # noqa: E402
from attnzoo.eval import scanpath as sp  # noqa: E402
from attnzoo.eval.scanpath_baselines import CentreBias, TrainingDensity  # noqa: E402
from attnzoo.huge_pages import reexec_with_huge_pages  # noqa: E402

DENSITY_SIGMA = 0.03  # of the longer image side
TARGET_METRICS = (*(f"MM {k}" for k in sp.MULTIMATCH_NAMES), "ScanMatch", "sequence score")


def pair_scores(generated: np.ndarray, human: np.ndarray, size, saliency) -> dict[str, float]:
    """Every metric of one generated scanpath against one human scanpath (pixels, ms)."""
    scores = {f"MM {k}": v for k, v in sp.multimatch(generated, human, size).items()}
    scores["ScanMatch"] = sp.scanmatch(generated, human, size)
    scores["ScanMatch (dur)"] = sp.scanmatch(generated, human, size, temporal_bin_ms=50)
    cells = [sp.grid_cells(p, size, 12, 8) for p in (generated, human)]
    scores["sequence score"] = sp.sequence_score(*cells)
    grid5 = [sp.grid_cells(p, size, 5, 5) for p in (generated, human)]
    scores["SED"] = sp.string_edit_distance(*grid5)
    scores["DTW / diagonal"] = sp.dtw(generated, human) / float(np.hypot(*size))
    scores["NSS"] = sp.nss(saliency, generated)
    return scores


def scanmatch_score(generated: np.ndarray, human: np.ndarray, size, saliency) -> dict:
    """ScanMatch alone: what the sampling temperature is chosen by."""
    return {"ScanMatch": sp.scanmatch(generated, human, size)}


def mean_scores(rows: list[dict]) -> dict[str, float]:
    return {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}


def paired_difference(a: list[dict], b: list[dict], metric: str) -> tuple[float, float]:
    """Mean and standard error over the images of `a - b` on `metric` (per-image scores of
    two methods on the same images)."""
    d = np.array([x[metric] - y[metric] for x, y in zip(a, b)])
    d = d[~np.isnan(d)]
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def evaluate(generate, records: dict, per_image: int, seed: int, score=pair_scores) -> list:
    """`generate(i, rng, k) -> [n, 3]` pixels of image `i` → per image, its `score`s
    averaged over its human scanpaths and draws (`mean_scores` then averages the images)."""
    rng = np.random.default_rng(seed)
    per_image_means = []
    for i in range(len(records["index"])):
        height, width = (int(v) for v in records["size"][i])
        humans = human_scanpaths(records, i)
        sigma = DENSITY_SIGMA * max(height, width)
        saliency = sp.fixation_density(humans, (width, height), sigma=sigma)
        rows = [
            score(generate(i, rng, k), h, (width, height), saliency)
            for k in range(per_image)
            for h in humans
        ]
        per_image_means.append(mean_scores(rows))
    return per_image_means


def best_temperature(make_generate, val: dict, per_image: int, temperatures) -> tuple:
    """`(τ, {τ: val ScanMatch})`: the τ of `temperatures` whose generator
    `make_generate(τ)` scores the best ScanMatch on `val`."""
    scores = {
        t: mean_scores(evaluate(make_generate(t), val, per_image, 0, scanmatch_score))["ScanMatch"]
        for t in temperatures
    }
    return max(scores, key=scores.get), scores


def human_agreement(test: dict) -> list:
    """Each viewer against the other viewers of the image (NSS on the others' density)."""
    per_image_means = []
    for i in range(len(test["index"])):
        height, width = (int(v) for v in test["size"][i])
        humans = human_scanpaths(test, i)
        sigma = DENSITY_SIGMA * max(height, width)
        rows = []
        for a, path in enumerate(humans):
            others = humans[:a] + humans[a + 1 :]
            saliency = sp.fixation_density(others, (width, height), sigma=sigma)
            rows += [pair_scores(path, h, (width, height), saliency) for h in others]
        per_image_means.append(mean_scores(rows))
    return per_image_means


def load_model(workdir: str):
    """(family, model) of a run's best checkpoint (else its latest)."""
    import ml_collections

    from attnzoo.train_loops.checkpointing import Checkpointer, latest_meta
    from attnzoo.train_loops.selection import best_step, best_workdir
    from attnzoo.train_loops.trainer import Trainer

    directory = best_workdir(workdir) if best_step(workdir) is not None else workdir
    found = latest_meta(directory)
    if found is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}")
    step, meta = found
    config = ml_collections.ConfigDict(json.loads(meta["config"]))
    trainer = Trainer(config, workdir)
    checkpointer = Checkpointer(directory, every=1, keep=1)
    try:
        state, _, _ = trainer.restore(checkpointer, step)
    finally:
        checkpointer.close()
    return trainer.family, trainer.model(state["model"])


def model_generator(family, model, records: dict, per_image: int, temperature: float):
    """Draws `per_image` scanpaths of every image at once; returns `generate`."""
    images = np.repeat(records["image"], per_image, axis=0)
    paths = family.predict(model, images, seed=0, temperature=temperature)  # image-side units
    longer = records["size"].max(1)

    def generate(i, rng, k):
        return paths[i * per_image + k] * [longer[i], longer[i], 1.0]

    return generate


def baseline_generator(sampler, records: dict):
    def generate(i, rng, k):
        height, width = records["size"][i]
        return sampler.sample(rng, (width, height))

    return generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tppgaze", default=None, help="workdir of a tppgaze_nus run")
    parser.add_argument("--oat", default=None, help="workdir of an oat_nus run")
    parser.add_argument("--per_image", type=int, default=10, help="scanpaths drawn per image")
    parser.add_argument("--split", default="test", help="images to evaluate on, e.g. test[:10]")
    parser.add_argument(
        "--temperatures",
        default="1,0.7,0.5,0.35,0.25",
        help="sampling temperatures to choose from on the validation images",
    )
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    temperatures = [float(t) for t in args.temperatures.split(",")]
    train, test = load_split("nus_scene", "train"), load_split("nus_scene", args.split)
    val = load_split("nus_scene", "val")

    def centre(records, t=1.0):
        return baseline_generator(CentreBias(train, temperature=t), records)

    t_centre, chosen = best_temperature(
        functools.partial(centre, val), val, args.per_image, temperatures
    )
    val_scanmatch = {"centre bias": chosen}
    sharp_centre = f"centre bias, σ × {t_centre:g} (val)"
    methods = {
        "human agreement": human_agreement(test),
        "centre bias": evaluate(centre(test), test, args.per_image, 0),
        sharp_centre: evaluate(centre(test, t_centre), test, args.per_image, 0),
        "training density": evaluate(
            baseline_generator(TrainingDensity(train), test), test, args.per_image, 0
        ),
    }
    models = []
    for name, workdir in (("TPP-Gaze", args.tppgaze), ("OAT", args.oat)):
        if workdir:
            family, model = load_model(workdir)
            t_model, val_scanmatch[name] = best_temperature(
                functools.partial(model_generator, family, model, val, args.per_image),
                val,
                args.per_image,
                temperatures,
            )
            for t in dict.fromkeys([1.0, t_model]):
                label = name if t == 1.0 else f"{name}, τ = {t:g} (val)"
                generate = model_generator(family, model, test, args.per_image, t)
                methods[label] = evaluate(generate, test, args.per_image, 0)
                models.append(label)
    means = {method: mean_scores(per_image) for method, per_image in methods.items()}
    rows = [
        (f"{method}: {metric}", value) for method, m in means.items() for metric, value in m.items()
    ]
    human = means["human agreement"]["ScanMatch"]
    for reference in ("centre bias", sharp_centre):
        base = means[reference]["ScanMatch"]
        for name in models:
            closed = (means[name]["ScanMatch"] - base) / (human - base)
            rows.append((f"{name}: share of the {reference} → human ScanMatch gap", closed))
    for name in models:
        for metric in TARGET_METRICS:
            mean, se = paired_difference(methods[name], methods["centre bias"], metric)
            rows.append((f"{name} − centre bias: {metric}, mean over images", mean))
            rows.append((f"{name} − centre bias: {metric}, standard error", se))
    extra = {"machine": machine(), "split": args.split, "per_image": args.per_image}
    extra["val_scanmatch_by_temperature"] = val_scanmatch
    extra["workdirs"] = {"tppgaze": args.tppgaze, "oat": args.oat}
    report(f"Scanpaths on NUS {args.split} ({len(test['index'])} images)", rows, args.out, extra)


if __name__ == "__main__":
    reexec_with_huge_pages()  # as the command-line entry points do
    main()
