"""Fine-tune the tiny-shakespeare LM on Python's help topics (`pydoc_data`, no download).

    python -m attnzoo.train --config=lm_tiny_shakespeare_to_pydoc --workdir=runs/ft_pydoc

Starts from the tag `lm_tiny.shakespeare` (its file in `$ATTNZOO_CACHE/lm_tiny.shakespeare/`;
produce it with `lm_tiny_shakespeare` + `python -m attnzoo.export`): the same `lm_tiny`
(bytes: no new vocabulary; RoPE: no position table, so every tensor loads as it is) over
256 bytes, 150 steps of 32 (~3 epochs of the 419,674 training bytes) at AdamW 1e-3 with a
short warmup. `benchmarks/finetune.py --config=lm_tiny_shakespeare_to_pydoc` compares it
with the same run from scratch: measured val loss 1.412 from the tag vs 2.115 from scratch
(benchmarks/README.md). `:smoke` drops `init_from` (CI has no weights cache).
"""

from attnzoo.configs._language import dense_tiny, finish, language_config


def get_config(arg: str | None = None):
    c = language_config("pydoc_text", model=dense_tiny(), context_len=256, steps=150, batch=32)
    c.optimizer.learning_rate = 1e-3
    c.train.eval_every = c.train.checkpoint_every = 50
    c.init_from.update(path="lm_tiny.shakespeare")
    if arg == "smoke":
        c.init_from.path = ""
    return finish(c, "lm_tiny_shakespeare_to_pydoc", arg)
