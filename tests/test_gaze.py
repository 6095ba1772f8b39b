"""Gaze family: NUS data and its errors, mixture densities, causal history, sampling
within the viewing time, baselines, OAT's cross-entropy, sampling and beam search."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import io

from attnzoo import create_model, data
from attnzoo.configs import load_config
from attnzoo.data import nus_scene, paths
from attnzoo.data.scanpaths import human_scanpaths, load_split, make_scanpath_dataset, mirror
from attnzoo.eval import scanpath_baselines as baselines
from attnzoo.train_loops.family import get_family
from attnzoo.zoo.gaze import mixtures
from attnzoo.zoo.pretrained import Weights, _flatten, load_pretrained

CONFIG = load_config("tppgaze_nus:smoke")  # its tiny model on the 128² NUS images


@pytest.fixture(scope="module")
def nus():
    root = os.environ.get("ATTNZOO_DATA_DIR")
    if not root or not os.path.isfile(os.path.join(root, nus_scene.RAW_SUBDIR, "fixations.mat")):
        pytest.skip("NUS scene data needs ATTNZOO_DATA_DIR (e.g. ../shared/data; CI sets it)")
    return {split: load_split("nus_scene", split) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def model():
    model = get_family(CONFIG).build_model(rngs=nnx.Rngs(0))
    model.eval()  # no dropout
    return model


def test_nus_split_by_image_with_normalised_padded_scanpaths(nus):
    assert data.dataset_info("nus_scene")["splits"] == {"train": 400, "val": 50, "test": 50}
    images = [set(nus[s]["index"].tolist()) for s in ("train", "val", "test")]
    assert [len(i) for i in images] == [400, 50, 50]
    assert set.union(*images) == set(range(500))
    rec = nus["test"]
    longer = rec["size"].max(1)[:, None, None]
    slots = np.arange(nus_scene.MAX_LEN) < rec["lengths"][..., None]  # [n, V, L]
    f = rec["fixations"]
    # Real fixations lie on the image's own area of the padded square; padding is zero.
    assert (f[..., 0] <= (rec["size"][:, 1, None, None] / longer) + 1e-6)[slots].all()
    assert (f[..., 1] <= (rec["size"][:, 0, None, None] / longer) + 1e-6)[slots].all()
    assert (f[..., 2][slots] >= 20).all() and (f[..., 2][slots] < 3000).all()  # ms
    assert (f[~slots] == 0).all()
    # Image 003 (index 2 if in test, else anywhere): aspect kept → zero rows at the bottom.
    wide = np.flatnonzero(rec["size"][:, 1] > rec["size"][:, 0] * 1.2)[0]
    h = round(nus_scene.IMAGE_SIZE * rec["size"][wide, 0] / rec["size"][wide, 1])
    assert rec["image"][wide, h + 1 :].max() == 0 and rec["image"][wide, : h - 1].max() > 0
    human = human_scanpaths(rec, 0)
    assert len(human) == (rec["lengths"][0] > 0).sum() and human[0][:, 0].max() > 1
    batch = next(iter(make_scanpath_dataset("nus_scene", "test", batch_size=4, shuffle=False,
                                            seed=0, repeat=False)))  # fmt: skip
    assert batch["image"].shape == (4, 128, 128, 3) and batch["image"].dtype == np.float32
    assert batch["fixations"].shape == (4, nus_scene.MAX_LEN, 3)
    np.testing.assert_array_equal(
        batch["valid"].sum(1), rec["lengths"][0][rec["lengths"][0] > 0][:4]
    )


def test_mirror_flips_the_image_content_and_x_keeping_the_padding():
    # A portrait image 3/4 of the canvas wide: pixel value = column + 1 on its content.
    size, columns = 8, 6
    image = np.zeros((size, size, 3), np.uint8)
    image[:, :columns] = (np.arange(columns) + 1)[None, :, None]
    fixations = np.array([[0.1, 0.5, 200.0], [0.6, 0.2, 300.0], [0.0, 0.0, 0.0]], np.float32)
    example = dict(image=image, fixations=fixations, valid=np.array([True, True, False]),
                   width=np.float32(0.75))  # fmt: skip
    mirrored = mirror(example)
    assert (mirrored["image"][:, :columns, 0] == np.arange(columns, 0, -1)).all()
    assert (mirrored["image"][:, columns:] == 0).all()  # padding stays on the right
    np.testing.assert_allclose(mirrored["fixations"][:2, 0], [0.65, 0.15], atol=1e-6)
    np.testing.assert_array_equal(mirrored["fixations"][:, 1:], fixations[:, 1:])
    assert (mirrored["fixations"][2] == 0).all()  # padding slots untouched
    # The pixel under each fixation keeps its value: it moved with the content.
    for before, after in zip(fixations[:2], mirrored["fixations"][:2]):
        assert image[0, int(before[0] * size), 0] == mirrored["image"][0, int(after[0] * size), 0]
    twice = mirror(mirrored)
    np.testing.assert_array_equal(twice["image"], image)
    np.testing.assert_allclose(twice["fixations"], fixations, atol=1e-6)


def test_training_batches_mirror_half_the_scanpaths_reproducibly(nus):
    def batch(seed, mirror_half, process_index=0, process_count=1):
        ds = make_scanpath_dataset("nus_scene", "val", batch_size=64, shuffle=False, seed=seed,
                                   repeat=False, mirror_half=mirror_half,
                                   process_index=process_index,
                                   process_count=process_count)  # fmt: skip
        return next(iter(ds))

    plain, mirrored = batch(0, False), batch(0, True)
    flipped = (mirrored["fixations"] != plain["fixations"]).any((1, 2))
    assert 16 < flipped.sum() < 48  # about half of 64
    x = plain["fixations"][..., 0]
    np.testing.assert_allclose(
        mirrored["fixations"][flipped, :, 0][plain["valid"][flipped]],
        (plain["width"][:, None] - x)[flipped][plain["valid"][flipped]],
        atol=1e-6,
    )
    np.testing.assert_array_equal(batch(0, True)["fixations"], mirrored["fixations"])
    assert (batch(1, True)["fixations"] != mirrored["fixations"]).any()
    # Two processes draw what one process draws, each for its share of the positions.
    for i in (0, 1):
        np.testing.assert_array_equal(
            batch(0, True, i, 2)["fixations"], mirrored["fixations"][i::2]
        )


def _write_nus(folder, fixations, sizes):
    folder.mkdir(parents=True, exist_ok=True)
    io.savemat(folder / "fixations.mat", {"fixations": fixations})
    info = np.zeros((1, 1), dtype=[("size", "O")])
    info[0, 0]["size"] = sizes
    io.savemat(folder / "imgInfo.mat", {"imgInfo": info})


def test_nus_bad_files_are_one_line_naming_the_file(tmp_path):
    with pytest.raises(paths.DataNotFoundError, match=r"fixations\.mat: file not found"):
        nus_scene.read_fixations(tmp_path / "fixations.mat", np.ones((500, 2)))
    (tmp_path / "junk.mat").write_bytes(b"not a mat file")
    with pytest.raises(paths.DataFormatError, match=r"junk\.mat: not a readable MATLAB file"):
        nus_scene.read_sizes(tmp_path / "junk.mat")
    sizes = np.full((500, 2), 100)
    cells = np.empty((500, 12), object)
    cells[:] = [[np.array([[10.0, 20.0, 0.1, 0.2]])] * 12] * 500
    _write_nus(tmp_path / "a", cells[:3], sizes)
    with pytest.raises(paths.DataFormatError, match=r"fixations is \(3, 12\)"):
        nus_scene.read_fixations(tmp_path / "a" / "fixations.mat", sizes)
    cells[4, 7] = np.array([[150.0, 20.0, 0.1, 0.2]])
    _write_nus(tmp_path / "b", cells, sizes)
    with pytest.raises(paths.DataFormatError, match="image 5 viewer 8: a fixation outside"):
        nus_scene.read_fixations(tmp_path / "b" / "fixations.mat", sizes)
    got = nus_scene.read_sizes(tmp_path / "b" / "imgInfo.mat")
    np.testing.assert_array_equal(got, sizes)


def test_mixture_densities_integrate_to_one():
    rng = np.random.default_rng(0)
    # (logits, μ, log σ) of 4 components; (logits, raw means, log σ) of 3 2-D components.
    duration_params = jnp.concatenate(
        [rng.normal(size=4), -1.4 + rng.normal(size=4), -0.5 + 0.3 * rng.normal(size=4)]
    )
    log_d = jnp.linspace(-12.0, 8.0, 4001)  # integrate p(d) dd = p(e^u) e^u du
    log_pdf = jax.jit(mixtures.lognormal_mixture_logpdf)  # one compile, not op by op
    dens = jnp.exp(log_pdf(duration_params, jnp.exp(log_d)) + log_d)
    assert float(jnp.trapezoid(dens, log_d)) == pytest.approx(1.0, abs=1e-4)
    position_params = jnp.concatenate(
        [rng.normal(size=3), rng.normal(size=6), -1.5 + 0.3 * rng.normal(size=6)]
    )
    axis = jnp.linspace(-2.0, 3.0, 501)
    xy = jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), -1)
    dens = jnp.exp(jax.jit(mixtures.gaussian2d_mixture_logpdf)(position_params, xy))
    total = jnp.trapezoid(jnp.trapezoid(dens, axis, axis=1), axis)
    assert float(total) == pytest.approx(1.0, abs=1e-4)


def test_sampling_temperature_sharpens_the_mixtures():
    """τ scales every σ (one component: the sample std is τ σ) and divides the logits (τ
    → 0: the mean of the most likely component, the median for durations)."""
    # One 2-D component at (0.5, 0.5) (raw mean 0) with σ = (0.1, 0.2); one log-normal.
    one = jnp.array([0.0, 0.0, 0.0, np.log(0.1), np.log(0.2)])
    draw = jax.jit(mixtures.sample_gaussian2d_mixture, static_argnums=2)
    keys = jax.random.split(jax.random.key(0), 20000)
    xy = np.asarray(jax.vmap(lambda k: draw(k, one, 0.5))(keys))
    np.testing.assert_allclose(xy.std(0), [0.05, 0.1], rtol=0.03)
    # Three components, raw means (-1, 0), (1, 0.5), (0.5, -0.5); the second most likely.
    three = jnp.array([0.0, 2.0, 1.0, -1.0, 0.0, 1.0, 0.5, 0.5, -0.5, *[-2.0] * 6])
    cold = np.asarray(jax.vmap(lambda k: draw(k, three, 1e-4))(keys[:100]))
    np.testing.assert_allclose(cold, np.tile((np.tanh([1.0, 0.5]) + 1) / 2, (100, 1)), atol=1e-4)
    durations = jnp.array([0.0, 3.0, -1.0, -1.2, 0.0, 0.0])  # (logits, μ, log σ) of 2
    d = jax.vmap(lambda k: mixtures.sample_lognormal_mixture(k, durations, 1e-4))(keys[:100])
    np.testing.assert_allclose(np.asarray(d), np.exp(-1.2), rtol=1e-3)


def test_history_encoder_is_causal(model):
    fix = jnp.asarray(np.random.default_rng(0).uniform(0.1, 0.9, (1, 6, 3)) * [1, 1, 500])
    changed = fix.at[0, 3].set(jnp.array([0.05, 0.95, 900.0]))
    history = nnx.jit(lambda m, f: m.history(f))
    before, after = history(model, fix), history(model, changed)
    # Row t sees fixations < t: rows 0..3 are unchanged, rows 4, 5 change.
    np.testing.assert_allclose(before[0, :4], after[0, :4], atol=1e-6)
    assert np.abs(np.asarray(before[0, 4:] - after[0, 4:])).min() > 0


def test_baselines_sample_until_the_budget(nus):
    train = nus["train"]
    budget = baselines.viewing_budget_ms(train)
    assert 1000 < budget < 3000  # NUS: 3 s shown, part of it in saccades
    rng = np.random.default_rng(0)
    for sampler in (baselines.CentreBias(train), baselines.TrainingDensity(train)):
        path = sampler.sample(rng, (400, 300))
        onsets = np.cumsum(path[:, 2]) - path[:, 2]
        assert (onsets < budget).all() and path[:, 2].sum() >= budget
        assert (path[:, 0] <= 400).all() and (path[:, 1] <= 300).all()
    sharp = baselines.CentreBias(train, temperature=0.5)
    np.testing.assert_allclose(sharp.std, 0.5 * baselines.CentreBias(train).std)
    uv = baselines.training_fixations(train)[0]
    density = baselines.TrainingDensity(train)
    draws = np.array([density.position(rng) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), uv.mean(0), atol=0.02)


def test_sampled_scanpaths_respect_the_viewing_time(nus, model, tmp_path):
    """`attnzoo.sample`'s `Family.sample`: PNGs and JSON of TPP-Gaze scanpaths, each drawn
    until the training scanpaths' mean fixation time is used up."""
    written = get_family(CONFIG).sample(model, str(tmp_path), split="test", num=3)
    first = nus["test"]["index"][0] + 1
    names = [os.path.basename(p) for p in written[:2]]
    assert names == [f"scanpath_{first:03d}.png", f"scanpath_{first:03d}.json"]
    assert len(written) == 6 and all(os.path.getsize(p) > 0 for p in written)
    budget = baselines.viewing_budget_ms(nus["train"])
    for i, path in enumerate(written[1::2]):
        with open(path) as f:
            fixations = np.array(json.load(f)["xy_ms"])
        onsets = np.cumsum(fixations[:, 2]) - fixations[:, 2]
        assert (onsets < budget).all()  # every fixation starts within the time
        assert fixations[:, 2].sum() >= budget or len(fixations) == nus_scene.MAX_LEN
        assert (fixations[:, :2] >= 0).all() and (
            fixations[:, :2] <= nus["test"]["size"][i].max()
        ).all()
    with pytest.raises(ValueError, match="sampling temperature 0.0 must be a number > 0"):
        get_family(CONFIG).sample(model, str(tmp_path), split="test", num=1, temperature=0.0)


@pytest.fixture(scope="module")
def oat():
    model = get_family(load_config("oat_nus:smoke")).build_model(rngs=nnx.Rngs(0))
    model.eval()
    return model


def test_oat_cross_entropy_covers_regions_then_the_end(oat):
    images = jnp.zeros((2, 128, 128, 3))
    fix = jnp.asarray([[[0.1, 0.1, 200], [0.9, 0.6, 300], [0, 0, 0]]] * 2, jnp.float32)
    valid = jnp.array([[True, True, False], [True, False, False]])
    terms, weight, logp = nnx.jit(
        lambda m, x, f, v: (*m.nll(x, f, v), jax.nn.log_softmax(m(x, f)))
    )(oat, images, fix, valid)
    np.testing.assert_array_equal(weight, [[1, 1, 1, 0], [1, 1, 0, 0]])
    # (0.1, 0.1) is cell 0 and (0.9, 0.6) cell 2·4 + 3 = 11 of the 4 × 4 grid.
    np.testing.assert_array_equal(oat.regions(fix[0, :2]), [0, 11])
    want = -np.array([logp[0, 0, 0], logp[0, 1, 11], logp[0, 2, oat.end_token]])
    np.testing.assert_allclose(terms["nll"][0, :3], want, rtol=1e-5)


def test_oat_sampling_and_beam_search(oat):
    images = jnp.asarray(np.random.default_rng(0).normal(size=(3, 128, 128, 3)), jnp.float32)
    fix, valid = nnx.jit(lambda m, x, k: m.sample(x, k, budget_ms=0.0, max_len=16))(
        oat, images, jax.random.key(0)
    )
    assert (np.asarray(valid)[:, :-1] >= np.asarray(valid)[:, 1:]).all()  # a prefix
    assert np.asarray(valid)[:, 0].all()  # at least one fixation
    # Anywhere inside the sampled region (4 × 4 grid), not at its centre; that the position
    # stays in the sampled region is checked below against greedy decoding.
    assert np.ptp(np.asarray(fix[..., :2]) * 4 % 1) > 0.5

    @nnx.jit
    def searches(m, x):
        def log_lik(fixations, valid):
            terms, weight = m.nll(x, fixations, valid)
            return -(terms["nll"] * weight).sum(-1)

        greedy, beam = (
            m.beam_search(x, beam_size=1, max_len=5),
            m.beam_search(x, beam_size=4, max_len=5),
        )
        cold = m.sample(x, jax.random.key(1), budget_ms=0.0, max_len=5, temperature=1e-4)
        return greedy, m(x, greedy[0]), log_lik(*greedy), log_lik(*beam), cold

    (g_fix, g_valid), logits, g_lik, b_lik, (c_fix, c_valid) = jax.tree.map(
        np.asarray, searches(oat, images)
    )
    # Sampling at τ → 0 is greedy decoding (beam search places fixations at cell centres).
    np.testing.assert_array_equal(c_valid, g_valid)
    regions = [np.asarray(oat.regions(f)) for f in (c_fix, g_fix)]
    np.testing.assert_array_equal(regions[0][c_valid], regions[1][g_valid])
    np.testing.assert_allclose(g_fix[..., :2] * 4 % 1, 0.5, atol=1e-6)
    logits = logits.copy()
    logits[:, 0, oat.end_token] = -np.inf  # the end cannot come first
    steps, n = logits.argmax(-1), g_valid.sum(-1)
    assert (n >= 1).all()
    for i in range(3):  # greedy: every kept step is the argmax, then the end (or full)
        np.testing.assert_array_equal(steps[i, : n[i]], np.asarray(oat.regions(g_fix[i]))[: n[i]])
        assert n[i] == 5 or steps[i, n[i]] == oat.end_token
    assert (b_lik >= g_lik - 1e-4).all()


def test_init_from_into_loads_a_zoo_vit_into_the_backbone():
    """`init_from.into="backbone"`: a ViT's params (its classifier too, in the source) fill
    the TPP backbone, which then computes that ViT's tokens; the rest stays as it was."""
    model = get_family(CONFIG).build_model(rngs=nnx.Rngs(0))
    vit = create_model(
        "vit_tiny",
        num_classes=10,
        image_size=(128, 128),
        patch_size=CONFIG.model.patch_size,
        width=CONFIG.model.backbone_width,
        depth=CONFIG.model.backbone_depth,
        num_heads=CONFIG.model.backbone_heads,
        mlp_dim=4 * CONFIG.model.backbone_width,
        pool="gap",
        rngs=nnx.Rngs(7),
    )
    weights = Weights(_flatten(nnx.to_pure_dict(nnx.state(vit, nnx.Param))), None, "vit")
    image_proj = np.asarray(model.image_proj.kernel[...]).copy()
    report = load_pretrained(model, weights, into="backbone")
    assert report["loaded"] and not report["reset"]
    images = jax.random.uniform(jax.random.key(1), (2, 128, 128, 3))
    model.eval()  # the config's dropout off
    np.testing.assert_allclose(model.backbone.tokens(images), vit.tokens(images), atol=1e-6)
    np.testing.assert_array_equal(model.image_proj.kernel[...], image_proj)
    with pytest.raises(ValueError, match="init_from.into='nope'"):
        load_pretrained(model, weights, into="nope")
