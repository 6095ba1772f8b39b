"""Gaussian diffusion: samplers on a 1-D Gaussian with its exact denoiser, training targets,
the VB term, and the engine's EMA of the params."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.configs import load_config
from attnzoo.train_loops import gaussian_diffusion as gd
from attnzoo.train_loops.trainer import Trainer, ema_update
from tests.helpers import flat_state

SCHEDULE = gd.Schedule()
MU, SIGMA = 0.3, 0.5  # data x0 ~ N(MU, SIGMA^2)


def exact_denoiser(x, t):
    """E[eps | x_t] for Gaussian data: x_t ~ N(sqrt(a) MU, a SIGMA^2 + 1 - a)."""
    a = jnp.asarray(SCHEDULE.alphas_cumprod, jnp.float32)[t].reshape(-1, 1, 1, 1)
    return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * MU) / (a * SIGMA**2 + 1 - a), None


@jax.jit
def _run_both(noise, key):
    ddpm = gd.sample(
        exact_denoiser,
        SCHEDULE,
        noise,
        key,
        method="ddpm",
        num_steps=1000,
        variance="small",
        clip=False,
    )
    ddim = gd.sample(
        exact_denoiser, SCHEDULE, noise, key, method="ddim", num_steps=1000, eta=1.0, clip=False
    )
    return ddpm, ddim


def test_ddim_eta1_reproduces_ddpm_marginals():
    noise = jax.random.normal(jax.random.key(0), (4000, 1, 1, 1))
    ddpm, ddim = map(np.asarray, _run_both(noise, jax.random.key(1)))
    for x in (ddpm, ddim):  # both reach the data distribution (MC error ~ 0.01)
        assert abs(x.mean() - MU) < 0.03 and abs(x.std() - SIGMA) < 0.03
    assert abs(ddpm.mean() - ddim.mean()) < 0.01 and abs(ddpm.std() - ddim.std()) < 0.01


def test_samplers_are_deterministic_for_a_seed():
    noise = jax.random.normal(jax.random.key(0), (8, 2, 2, 1))
    run = jax.jit(
        lambda key: gd.sample(
            exact_denoiser, SCHEDULE, noise, key, method="ddim", num_steps=20, eta=1.0
        )
    )
    a, b, c = run(jax.random.key(3)), run(jax.random.key(3)), run(jax.random.key(4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_v_and_eps_targets_are_consistent():
    x0 = jax.random.normal(jax.random.key(0), (4, 2, 2, 1))
    noise = jax.random.normal(jax.random.key(1), x0.shape)
    t = jnp.array([0, 10, 500, 999])
    x_t = gd.q_sample(SCHEDULE, x0, t, noise)
    a = SCHEDULE.alphas_cumprod[np.asarray(t)].reshape(-1, 1, 1, 1)
    np.testing.assert_allclose(x_t, np.sqrt(a) * x0 + np.sqrt(1 - a) * noise, rtol=1e-5, atol=1e-6)
    v = gd.v_target(SCHEDULE, x0, t, noise)
    np.testing.assert_allclose(gd.eps_from_v(SCHEDULE, x_t, t, v), noise, atol=1e-4)


def test_vb_term_vanishes_for_the_true_posterior():
    """With the true noise and frac = -1 (log variance = the posterior's), the model
    posterior is the true one: KL = 0 for t > 0."""
    x0 = jax.random.uniform(jax.random.key(0), (3, 4, 4, 1), minval=-1, maxval=1)
    noise = jax.random.normal(jax.random.key(1), x0.shape)
    t = jnp.array([1, 100, 999])
    x_t = gd.q_sample(SCHEDULE, x0, t, noise)
    vb = jax.jit(lambda frac: gd.vb_term(SCHEDULE, x0, x_t, t, noise, frac))
    np.testing.assert_allclose(vb(-jnp.ones_like(x0)), 0.0, atol=1e-6)
    assert vb(jnp.ones_like(x0))[1] > 5e-5  # log beta instead: the KL is positive


def test_linear_betas_match_the_official_schedule():
    betas = SCHEDULE.betas
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) / 999)


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """One EMA step of an unconditional DiT (random latents, 16 tokens), checkpointed with
    2 sampling steps in its config: `(workdir, ema before, trainer, state)`."""
    from attnzoo.train_loops.checkpointing import Checkpointer

    workdir = str(tmp_path_factory.mktemp("dit_uncond"))
    config = load_config("dit_s2_imagenet_latent:smoke")
    config.model.update(patch_size=8, num_classes=0)
    config.train.ema_decay = 0.5
    config.diffusion.sample_steps = 2
    trainer = Trainer(config, workdir)
    state = trainer.init_state()
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    before = jax.tree.map(np.asarray, state["ema"])
    params_before = nnx.state(trainer.model(state["model"]), nnx.Param)
    assert all(map(np.array_equal, jax.tree.leaves(before), jax.tree.leaves(params_before)))
    state, _ = trainer.train_step(state, next(data))
    checkpointer = Checkpointer(workdir, every=1, keep=1)
    trainer.save(checkpointer, 1, state, data.get_state())
    checkpointer.close()
    return workdir, before, trainer, state


def test_ema_update_and_engine_state(one_step_run):
    ema = {"w": jnp.array([1.0, 2.0])}
    np.testing.assert_allclose(ema_update(ema, {"w": jnp.array([3.0, 0.0])}, 0.75)["w"], [1.5, 1.5])
    _, before, trainer, state = one_step_run
    params = nnx.state(trainer.model(state["model"]), nnx.Param)
    expected = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * np.asarray(p), before, params)
    for got, want in zip(jax.tree.leaves(state["ema"]), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    # Evaluation and sampling read the average, not the raw params.
    inference = nnx.state(trainer.model(trainer.inference_state(state)), nnx.Param)
    for got, want in zip(jax.tree.leaves(inference), jax.tree.leaves(state["ema"]), strict=True):
        np.testing.assert_array_equal(got, want)


def test_weights_of_a_run_with_ema_are_the_average(one_step_run):
    """What `create_model(pretrained=run)`, `init_from` and `attnzoo.export` read."""
    from attnzoo.zoo.pretrained import read_weights

    workdir, _, trainer, state = one_step_run
    flat = read_weights(workdir).params
    ema = flat_state(state["ema"])
    raw = flat_state(nnx.state(trainer.model(state["model"]), nnx.Param))
    assert len(ema) > 10
    for name, value in ema.items():
        np.testing.assert_array_equal(flat[name], value, err_msg=name)
    assert any(not np.array_equal(raw[n], v) for n, v in ema.items())  # the step moved them


def test_sample_cli_writes_a_grid(one_step_run, capsys):
    from attnzoo import sample

    sample.main([f"--workdir={one_step_run[0]}", "--num=3", "--seed=1"])
    out = capsys.readouterr().out
    assert "wrote 2 samples" in out and "grid.png" in out
    images = np.load(f"{one_step_run[0]}/samples/samples.npz")["images"]
    assert images.shape == (3, 32, 32, 4) and np.isfinite(images).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--guidance=4"], "guidance needs a class-conditional model"),
        (["--resolution=36"], "not a multiple of the patch size 8"),
    ],
)
def test_sample_cli_refuses_bad_input(one_step_run, args, message):
    from attnzoo import sample

    with pytest.raises(ValueError, match=message):
        sample.main([f"--workdir={one_step_run[0]}", *args])


def test_sample_cli_without_checkpoint(tmp_path):
    from attnzoo import sample

    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        sample.main([f"--workdir={tmp_path}"])


def test_frechet_distance_matches_the_closed_form():
    from attnzoo.eval.diffusion import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, (500, 1)), rng.normal(2.0, 3.0, (400, 1))
    va, vb = a.var(ddof=1), b.var(ddof=1)
    want = (a.mean() - b.mean()) ** 2 + va + vb - 2 * np.sqrt(va * vb)
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    # Diagonal covariances: the sum of per-dimension distances.
    c, d = rng.normal(size=(300, 3)) * [1, 2, 3], rng.normal(size=(300, 3)) + 1
    per_dim = [frechet_distance(c[:, [i]], d[:, [i]]) for i in range(3)]
    assert frechet_distance(c, d) == pytest.approx(sum(per_dim), abs=0.05 * sum(per_dim))


def test_precision_recall_of_identical_and_disjoint_sets():
    from attnzoo.eval.diffusion import precision_recall

    real = np.random.default_rng(0).normal(size=(50, 2))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    half = np.concatenate([real[:25], real[:25] + 100.0])  # half the samples on the data
    precision, recall = precision_recall(real, half)
    assert precision == 0.5 and 0.3 < recall < 1.0
