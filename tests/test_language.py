"""Language family: tokenizers, text data, the decoder LM (causality, KV-cached generation
for every attention kind), eval metrics, Muon's per-head layout, MuonClip and the sample
entry point."""

import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from attnzoo.configs import ConfigError, load_config
from attnzoo.data import text_pipeline
from attnzoo.data.text_builder import split_by_characters
from attnzoo.data.tokenizer import BpeTokenizer, ByteTokenizer
from attnzoo.layers.attention_kinds import ATTENTION_KINDS
from attnzoo.train_loops.checkpointing import Checkpointer
from attnzoo.train_loops.family import get_family
from attnzoo.train_loops.optimizers import make_optimizer, muon_dimensions
from attnzoo.train_loops.trainer import Trainer
from attnzoo.zoo.language.generation import filter_logits, generate
from attnzoo.zoo.language.model import LanguageModel

TINY = dict(vocab_size=64, width=32, depth=1, num_heads=4, num_kv_heads=2, max_length=24)
KIND_CASES = [(kind, None) for kind in sorted(ATTENTION_KINDS)] + [("dense", 4)]
# Options that fit each kind to TINY's 4 query / 2 kv heads.
KIND_OPTIONS = {
    "gda": {"noise_heads": 2},
    "moba": {"block_size": 4, "top_k": 1},  # 3 blocks over 12 tokens: routing matters
    "ssa": {"block_size": 2, "local_blocks": 1, "random_blocks": 1},
}


def _model(kind: str, window=None, seed=0) -> LanguageModel:
    with nnx.use_eager_sharding(False):
        return LanguageModel(
            **TINY,
            attention=kind,
            attention_options={kind: KIND_OPTIONS[kind]} if kind in KIND_OPTIONS else None,
            window=window,
            rngs=nnx.Rngs(seed),
        )


@nnx.jit(static_argnames="decode")
def _logits(model, tokens, decode=False, rng=None):
    forward = nnx.capture(lambda m, x: m(x, decode=decode, rng=rng), nnx.Intermediate)
    return forward(model, tokens)[0]


# ------------------------------------------------------------------------- tokenizers
def test_byte_tokenizer_round_trip_and_bytes_per_token():
    text = "ROMEO: naïve — 😀\n"
    tok = ByteTokenizer()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.token_bytes()[ids].sum() == len(text.encode())


def test_bpe_trains_saves_reloads_and_round_trips(tmp_path):
    text = text_pipeline.split_text("pydoc_text", "val")[:20000]
    tok = BpeTokenizer.train(text, 300)
    assert 256 < tok.vocab_size <= 300
    tok.save(tmp_path / "tokenizer.json")
    again = BpeTokenizer.load(tmp_path / "tokenizer.json")
    sample = text[:2000] + " naïve 😀"
    ids = again.encode(sample)
    assert len(ids) < len(sample.encode())  # merges learned
    assert again.decode(ids) == sample
    assert again.token_bytes()[ids].sum() == len(sample.encode())
    assert again.fingerprint == tok.fingerprint


# ------------------------------------------------------------------------------- data
def test_character_split_and_packed_sequences():
    assert split_by_characters("abcdefghij", {"train": 0.9, "val": 0.1}) == {
        "train": "abcdefghi",
        "val": "j",
    }
    text = text_pipeline.split_text("pydoc_text", "val")
    from attnzoo.data.pydoc_text import load_pydoc_text

    full = load_pydoc_text()
    assert text == full[int(0.9 * len(full)) :]
    tokens = ByteTokenizer().encode(text)
    source = text_pipeline.SequenceSource(tokens, 16)
    assert len(source) == (len(tokens) - 1) // 16
    second = source[1]
    np.testing.assert_array_equal(second["inputs"], tokens[16:32])
    np.testing.assert_array_equal(second["targets"], tokens[17:33])


@pytest.mark.skipif(not os.environ.get("ATTNZOO_DATA_DIR"), reason="needs ATTNZOO_DATA_DIR")
def test_tinyshakespeare_is_split_90_10_by_characters():
    path = os.path.join(os.environ["ATTNZOO_DATA_DIR"], "text", "tinyshakespeare.txt")
    with open(path, encoding="utf-8") as f:
        full = f.read()
    cut = int(0.9 * len(full))
    assert text_pipeline.split_text("tinyshakespeare", "val") == full[cut:]
    assert len(text_pipeline.split_text("tinyshakespeare", "train")) == cut == 1003854


# ------------------------------------------------------------------------------ model
@pytest.mark.parametrize("kind, window", KIND_CASES)
def test_no_future_and_cached_decoding_equals_the_full_forward(kind, window):
    model = _model(kind, window)
    tokens = jax.random.randint(jax.random.key(1), (1, 12), 0, 64)
    changed = tokens.at[:, 7].set((tokens[:, 7] + 1) % 64)
    for rng in (jax.random.key(5), None):  # training (stochastic kinds draw) and eval
        a, b = _logits(model, tokens, rng=rng), _logits(model, changed, rng=rng)  # [1, 12, V]
        np.testing.assert_allclose(a[:, :7], b[:, :7], atol=1e-5)  # none sees position 7
        assert float(jnp.abs(a[:, 7:] - b[:, 7:]).max()) > 1e-4
    model.init_cache(1, 12)
    steps = [tokens[:, :5]] + [tokens[:, i : i + 1] for i in range(5, 12)]  # prefill, then 1 by 1
    cached = jnp.concatenate([_logits(model, x, decode=True) for x in steps], axis=1)
    np.testing.assert_allclose(cached, a, atol=1e-4)  # `a`: the eval forward


def test_cached_generation_equals_generation_by_full_recomputation():
    model = _model("dense", seed=3)
    prompt = np.asarray(jax.random.randint(jax.random.key(2), (2, 5), 0, 64))
    settings = dict(max_new_tokens=6, rng=jax.random.key(4), temperature=1.0, top_k=20)
    cached, cached_logits = generate(model, prompt, use_cache=True, **settings)
    full, full_logits = generate(model, prompt, use_cache=False, **settings)
    np.testing.assert_allclose(cached_logits, full_logits, atol=1e-4)
    np.testing.assert_array_equal(cached, full)


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = jnp.log(jnp.array([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    kept = np.isfinite(np.asarray(filter_logits(logits, top_k=2)))
    np.testing.assert_array_equal(kept, [[1, 1, 0, 0, 0]])
    # nucleus: smallest prefix whose mass reaches 0.8 = {0.5, 0.2, 0.15}
    kept = np.isfinite(np.asarray(filter_logits(logits, top_p=0.8)))
    np.testing.assert_array_equal(kept, [[1, 1, 1, 0, 0]])


def test_generation_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="exceeds the model's context of 24 tokens"):
        generate(_model("dense"), np.zeros((1, 20), np.int32), max_new_tokens=5, rng=None)


def test_unknown_attention_kind_is_named(smoke_config):
    from attnzoo.validation import validate

    config = smoke_config.copy_and_resolve_references()
    config.model.attention = "dens"
    with pytest.raises(ConfigError, match="unknown attention kind 'dens'"):
        validate(config)


# ---------------------------------------------------------------------- family, engine
@pytest.fixture(scope="module")
def smoke_config():
    return load_config("lm_tiny_pydoc:smoke")


@pytest.fixture(scope="module")
def clipped_run(smoke_config, tmp_path_factory):
    """One MuonClip step (τ = 0.5, tiny lr) checkpointed in a workdir: the trainer, the
    batch, the state before and after, and the workdir."""
    config = smoke_config.copy_and_resolve_references()
    config.optimizer.update(name="muon", learning_rate=1e-6, qk_clip=0.5)
    work = str(tmp_path_factory.mktemp("lm") / "run")
    trainer = Trainer(config, work)
    data = iter(trainer.family.make_dataset("train", train=True, process_index=0, process_count=1))
    batch = next(data)
    before = trainer.init_state()
    before_params = jax.device_get(before["model"])
    after, metrics = trainer.train_step(before, batch)
    checkpointer = Checkpointer(work, every=1, keep=1)
    trainer.save(checkpointer, 1, after, data.get_state())
    checkpointer.close()
    return trainer, batch, before_params, after, metrics, work


def test_eval_metrics_follow_their_definitions(smoke_config):
    family = get_family(smoke_config)
    with nnx.use_eager_sharding(False):
        model = family.build_model(rngs=nnx.Rngs(0))
    batch = next(iter(family.make_dataset("val", train=False, process_index=0, process_count=1)))
    batch = {**batch, "mask": np.arange(len(batch["inputs"])) < 5}
    sums = jax.device_get(nnx.jit(family.eval_metrics)(model, batch))
    logits = np.asarray(_logits(model, batch["inputs"]), np.float64)[:5]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, batch["targets"][:5, :, None], -1).mean()
    metrics = family.summarize({k: float(s) / float(c) for k, (s, c) in sums.items()})
    assert metrics["loss"] == pytest.approx(nll, rel=1e-5)
    assert metrics["bits_per_byte"] == pytest.approx(nll / math.log(2), rel=1e-5)  # bytes
    assert metrics["perplexity"] == pytest.approx(math.exp(nll), rel=1e-5)


def test_muon_orthogonalises_each_head_of_a_3d_kernel(smoke_config):
    with nnx.use_eager_sharding(False):
        embed = nnx.Embed(64, 32, rngs=nnx.Rngs(0))
        embed.embedding.set_metadata(out_sharding=("vocab", "embed"))
        model = nnx.Dict(attention=ATTENTION_KINDS["dense"](32, 4, rngs=nnx.Rngs(0)), embed=embed)
    params = nnx.state(model, nnx.Param)
    dims = muon_dimensions(params)
    attention = dims["attention"]
    assert tuple(attention["query"]["kernel"]) == (0, 2)  # [embed, heads, kv]
    assert tuple(attention["out"]["kernel"]) == (1, 2)  # [heads, kv, embed]
    assert dims["embed"]["embedding"] is None  # AdamW
    config = smoke_config.copy_and_resolve_references()
    config.optimizer.update(name="muon", weight_decay=0.0, clip_norm=0.0)
    config.schedule.update(name="constant", warmup_steps=0)
    tx, _ = make_optimizer(config, 10)
    grads = jax.tree.map(
        lambda p: jax.random.normal(jax.random.key(p.size), p.shape), nnx.as_pure(params)
    )
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), nnx.as_pure(params))
    g = grads["attention"]["query"]["kernel"]  # [e, h, d]
    u = updates["attention"]["query"]["kernel"]
    plain = optax.contrib.muon(config.optimizer.learning_rate)  # optax's 2-D Muon per head
    plain_update = jax.jit(lambda m: plain.update(m, plain.init(m), m)[0])
    for head in range(g.shape[1]):
        expected = plain_update(g[:, head])
        np.testing.assert_allclose(u[:, head], expected, rtol=1e-4, atol=1e-6)


def test_muon_momentum_is_its_own_unless_set(monkeypatch, smoke_config):
    seen = []
    real = optax.contrib.muon
    monkeypatch.setattr(
        optax.contrib, "muon", lambda *a, **k: seen.append(k["beta"]) or real(*a, **k)
    )
    config = smoke_config.copy_and_resolve_references()
    config.optimizer.name = "muon"
    make_optimizer(config, 10)
    config.optimizer.momentum = 0.8
    make_optimizer(config, 10)
    assert seen == [0.95, 0.8]


def test_muon_clip_bounds_every_heads_logit_by_tau(clipped_run):
    trainer, batch, before, after, metrics, _ = clipped_run

    @jax.jit
    def head_max_logits(model_state):
        _, aux = trainer.family.loss(trainer.model(model_state), batch, jax.random.key(0))
        return jnp.concatenate([v for k, v in aux.items() if k.startswith("max_logit/")])

    first, then = np.asarray(head_max_logits(before)), np.asarray(head_max_logits(after["model"]))
    assert first.max() > 0.5  # some heads start above τ
    assert then.max() <= 0.5 * (1 + 1e-3)
    below = first < 0.5
    np.testing.assert_allclose(then[below], first[below], rtol=1e-3)  # untouched heads
    assert not any(k.startswith("max_logit/") for k in metrics)  # only scalars logged
    unclipped = get_family(trainer.config.copy_and_resolve_references())
    unclipped.config.optimizer.qk_clip = 0.0  # no QK-Clip: no second q.k pass, no max logits
    _, aux = nnx.jit(unclipped.loss)(trainer.model(before), batch, jax.random.key(0))
    assert "max_logit" in metrics and not any(k.startswith("max_logit") for k in aux)


def test_sample_entry_point_and_its_errors(clipped_run, capsys):
    from attnzoo import sample

    work = clipped_run[-1]
    sample.main([f"--workdir={work}", "--prompt=The ", "--num=2", "--max_new_tokens=4"])
    paths = capsys.readouterr().out.strip().splitlines()[1:]
    assert len(paths) == 2
    with open(paths[0], encoding="utf-8") as f:
        assert f.read().startswith("The ")
    with pytest.raises(ValueError, match="the prompt is 20 tokens long: the model's context is 16"):
        sample.main([f"--workdir={work}", "--prompt=" + "x" * 20])
    with pytest.raises(ConfigError, match="--top_p=0.0 must be in"):
        sample.main([f"--workdir={work}", "--top_p=0"])


def test_bpe_tokenizer_is_saved_in_the_workdir_and_required_beside_a_checkpoint(
    clipped_run, tmp_path
):
    config = clipped_run[0].config.copy_and_resolve_references()
    config.data.update(tokenizer="bpe", vocab_size=300)
    fresh = get_family(config, str(tmp_path / "fresh")).tokenizer  # trained on train
    assert os.path.isfile(tmp_path / "fresh" / "tokenizer.json")
    reloaded = get_family(config, str(tmp_path / "fresh")).tokenizer
    assert reloaded.fingerprint == fresh.fingerprint
    work = tmp_path / "trained"
    shutil.copytree(os.path.join(clipped_run[-1], "checkpoints"), work / "checkpoints")
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        _ = get_family(config, str(work)).tokenizer
