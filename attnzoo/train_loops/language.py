"""Language modelling: next-token cross-entropy (+ the attention layers' auxiliary losses),
MuonClip's QK-Clip after each update, eval loss / perplexity / bits per byte, and text
generation with the KV cache (`python -m attnzoo.sample --workdir=DIR --prompt=...`).

Batches: `inputs`, `targets` int32 `[b, L]` (`attnzoo.data.text_pipeline`).
`config.data`: `name` (a text dataset), `context_len` L, `tokenizer` ("byte" | "bpe"),
`vocab_size` (bpe). A BPE is trained on the train split at the start of a run and saved
as `WORKDIR/tokenizer.json`; runs resumed or sampled from that workdir reload it.
`config.optimizer.qk_clip`: τ of QK-Clip (0 = off); the per-layer max logits it needs (and
the `max_logit` metric) are computed only when it is on. Auxiliary losses (MoH's balance loss)
come weighted by their layers.
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from attnzoo import data
from attnzoo.data.pipeline import parse_split
from attnzoo.data.text_pipeline import make_text_dataset, split_text
from attnzoo.data.tokenizer import KINDS, TOKENIZER_FILE, BpeTokenizer, ByteTokenizer
from attnzoo.layers.causal_attention import MaxLogit
from attnzoo.train_loops.checkpointing import latest_meta
from attnzoo.train_loops.family import Family, model_kwargs
from attnzoo.zoo.language.generation import generate
from attnzoo.zoo.registry import create_model

MAX_LOGIT = "max_logit"


def _sown(states: list[nnx.State], name: str) -> list[tuple[tuple, jax.Array]]:
    """`(path of the sowing module, value)` of every value sown under `name`."""
    return [
        (path[:-1], v)
        for state in states
        for path, var in nnx.to_flat_state(state)
        if path[-1] == name
        for v in var.get_value()
    ]


def _submodule(model: nnx.Module, path: tuple) -> nnx.Module:
    return functools.reduce(
        lambda m, key: m[key] if isinstance(key, int) else getattr(m, key), path, model
    )


class LanguageFamily(Family):
    def __init__(self, config, workdir=None):
        super().__init__(config, workdir)
        cfg = config.data
        if cfg.get("tokenizer", "byte") not in KINDS:
            raise ValueError(f"data.tokenizer={cfg.tokenizer!r}; choose one of {', '.join(KINDS)}")
        context = cfg.get("context_len")
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            raise ValueError(f"data.context_len={context!r} must be an int >= 1")
        if cfg.get("tokenizer") == "bpe" and not 256 < cfg.get("vocab_size", 0):
            raise ValueError(f"data.vocab_size={cfg.get('vocab_size')!r} must exceed 256 for bpe")
        tau = config.optimizer.get("qk_clip", 0.0)
        if not tau >= 0:
            raise ValueError(f"optimizer.qk_clip={tau!r} must be >= 0 (0 = no QK-Clip)")
        self._check_context(cfg)

    @staticmethod
    def _check_context(cfg) -> None:
        """With bytes, every split must hold a sequence of `context_len + 1` tokens."""
        info = data.dataset_info(cfg.name)
        if info["kind"] != "text":
            raise ValueError(
                f"data.name={cfg.name!r} is not a text dataset (it holds {info['kind']} data)"
            )
        if cfg.get("tokenizer", "byte") != "byte":
            return
        for key in ("train_split", "eval_split"):
            split = parse_split(cfg[key])[0]
            size = info["split_bytes"].get(split, 0)
            if 0 < size <= cfg.context_len:
                raise ValueError(
                    f"data.context_len={cfg.context_len} leaves no sequence in {cfg.name}[{split}] "
                    f"({size} bytes); lower it"
                )

    @property
    def vocab_size(self) -> int:
        cfg = self.config.data
        return cfg.vocab_size if cfg.get("tokenizer", "byte") == "bpe" else ByteTokenizer.vocab_size

    @functools.cached_property
    def tokenizer(self):
        """Bytes, or the run's BPE: loaded from the workdir, else trained and saved there."""
        cfg = self.config.data
        if cfg.get("tokenizer", "byte") == "byte":
            return ByteTokenizer()
        path = os.path.join(self.workdir, TOKENIZER_FILE) if self.workdir else None
        if path and os.path.isfile(path):
            return BpeTokenizer.load(path)
        if path and latest_meta(self.workdir) is not None:
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint in {self.workdir} was trained with the BPE "
                "tokenizer saved there; put it back, or train in a new --workdir"
            )
        train_split = cfg.train_split.split("[")[0]
        text = split_text(cfg.name, train_split, None, cfg.get("data_dir") or None)
        tokenizer = BpeTokenizer.train(text, cfg.vocab_size)
        if path and jax.process_index() == 0:
            os.makedirs(self.workdir, exist_ok=True)
            tokenizer.save(path)
        return tokenizer

    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        kwargs = dict(vocab_size=self.vocab_size, max_length=self.config.data.context_len)
        kwargs.update(model_kwargs(self.config.model))
        return create_model(self.config.model.name, rngs=rngs, **kwargs)

    def _forward(self, model, inputs, rng=None, *, max_logits=False):
        """Logits `[b, L, V]` and the sown states; the attention layers' max logits (a second
        q.k pass) only with `max_logits`."""
        kinds = (MaxLogit, nnx.Intermediate) if max_logits else (nnx.Intermediate,)
        logits, *states = nnx.capture(lambda m, x: m(x, rng=rng), *kinds)(model, inputs)
        return logits, states

    def loss(self, model, batch, rng):
        clip = self.config.optimizer.get("qk_clip", 0.0) > 0
        logits, intermediates = self._forward(model, batch["inputs"], rng, max_logits=clip)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean()
        metrics, loss = {"nll": nll}, nll
        aux = [v for _, v in _sown(intermediates, "aux_loss")]  # each already weighted
        if aux:
            metrics["aux_loss"] = sum(aux)
            loss = loss + metrics["aux_loss"]
        max_logits = _sown(intermediates, MAX_LOGIT)  # each [heads]
        if max_logits:
            metrics[MAX_LOGIT] = jnp.max(jnp.stack([v.max() for _, v in max_logits]))
            for path, value in max_logits:
                metrics[f"{MAX_LOGIT}/{'.'.join(map(str, path))}"] = value
        return loss, metrics

    def post_update(self, model, metrics):
        """QK-Clip (Kimi K2): each attention layer rescales W_q, W_k of its heads whose
        max logit this step exceeded τ; per-layer max logits are then dropped from logging."""
        tau = self.config.optimizer.get("qk_clip", 0.0)
        out = {}
        for key, value in metrics.items():
            if not key.startswith(f"{MAX_LOGIT}/"):
                out[key] = value
            elif tau:
                path = tuple(int(p) if p.isdigit() else p for p in key.split("/", 1)[1].split("."))
                _submodule(model, path).qk_clip(value, tau)
        return out

    def eval_metrics(self, model, batch):
        logits, _ = self._forward(model, batch["inputs"])  # [b, L, V]
        targets = batch["targets"]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # [b, L]
        mask = jnp.broadcast_to(batch["mask"][:, None], targets.shape).astype(jnp.float32)
        nbytes = jnp.asarray(self.tokenizer.token_bytes())[targets] * mask
        correct = (logits.argmax(-1) == targets) * mask
        tokens = mask.sum()
        return {
            "loss": ((nll * mask).sum(), tokens),
            "accuracy": (correct.sum(), tokens),
            "bits_per_byte": ((nll * mask).sum() / math.log(2), nbytes.sum()),
        }

    def summarize(self, metrics):
        if "loss" in metrics:
            metrics = {**metrics, "perplexity": math.exp(min(metrics["loss"], 700.0))}
        return metrics

    def make_dataset(self, split: str, *, train: bool, process_index: int, process_count: int):
        config = self.config
        return make_text_dataset(
            config.data.name,
            split,
            tokenizer=self.tokenizer,
            context_len=config.data.context_len,
            batch_size=config.train.batch_size if train else config.train.eval_batch_size,
            shuffle=train,
            repeat=train,
            seed=config.seed,
            data_dir=config.data.get("data_dir") or None,
            process_index=process_index,
            process_count=process_count,
            drop_remainder=train,
        )

    def sample(
        self,
        model,
        out_dir: str,
        *,
        split: str,
        num: int,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> list[str]:
        """`num` continuations of `prompt` (default: the first 32 tokens of `num` evenly
        spaced sequences of `split`), generated with the KV cache up to `max_new_tokens`
        (default: to the end of the context); one text file each."""
        tokenizer, context = self.tokenizer, self.config.data.context_len
        if prompt is not None:
            ids = np.repeat(tokenizer.encode(prompt)[None], num, axis=0)
        else:
            sequences = make_text_dataset(
                self.config.data.name, split, tokenizer=tokenizer, context_len=context,
                batch_size=1, shuffle=False, seed=0, repeat=False, drop_remainder=False,
                data_dir=self.config.data.get("data_dir") or None,
            )  # fmt: skip
            rows = [batch["inputs"][0, : min(32, context - 1)] for batch in sequences]
            ids = np.stack([rows[i] for i in np.linspace(0, len(rows) - 1, num).astype(int)])
        if ids.shape[1] == 0:
            raise ValueError("the prompt is empty: give at least one character")
        if ids.shape[1] >= context:
            raise ValueError(
                f"the prompt is {ids.shape[1]} tokens long: the model's context is {context} "
                "tokens (the prompt plus at least one new token); shorten the prompt"
            )
        max_new_tokens = max_new_tokens or context - ids.shape[1]
        if ids.shape[1] + max_new_tokens > context:
            raise ValueError(
                f"prompt of {ids.shape[1]} tokens + --max_new_tokens={max_new_tokens} exceeds "
                f"the model's context of {context} tokens; shorten the prompt or lower "
                "--max_new_tokens"
            )
        tokens, _ = generate(
            model, ids, max_new_tokens=max_new_tokens, rng=jax.random.key(seed),
            temperature=temperature, top_k=top_k, top_p=top_p,
        )  # fmt: skip
        paths = []
        for i in range(num):
            path = os.path.join(out_dir, f"sample_{i}.txt")
            with open(path, "w", encoding="utf-8") as f:
                f.write(tokenizer.decode(ids[i]) + tokenizer.decode(tokens[i]))
            paths.append(path)
        return paths


FAMILY = LanguageFamily
