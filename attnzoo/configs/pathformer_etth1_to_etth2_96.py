"""Fine-tune Pathformer from ETTh1 to ETTh2 (input 96, horizon 96).

    python -m attnzoo.train --config=pathformer_etth1_to_etth2_96 --workdir=runs/ft_etth2

Starts from the tag `pathformer.etth1_96` (its file in `$ATTNZOO_CACHE/pathformer.etth1_96/`;
produce it with `pathformer_etth1_96` + `python -m attnzoo.export`): the ETTh1-96
architecture (k 3, residual, batch 128; both datasets have 7 variables, so every tensor
loads as it is) trained on ETTh2 for 5 epochs of the official schedule (Adam 5e-4,
one-cycle), best checkpoint by val MAE. `benchmarks/finetune.py
--config=pathformer_etth1_to_etth2_96` compares it with the same run from scratch.
`:smoke` drops `init_from` (CI has no weights cache).
"""

from attnzoo.configs._forecasting import pathformer_config


def get_config(arg: str | None = None):
    c = pathformer_config(
        "etth2", 96, "pathformer_etth1_to_etth2_96", arg, recipe_of=("etth1", 96), epochs=5,
        patience=5,
    )  # fmt: skip
    c.init_from.update(path="pathformer.etth1_96")
    if arg == "smoke":
        c.init_from.path = ""
    return c
