"""Pathformer on the embedded weekly Mauna Loa CO2 series (statsmodels): no download.

    python -m attnzoo.train --config=pathformer_demo --workdir=runs/pathformer_demo

Input 96 weeks, horizon 24 weeks, the ETTh1-96 model and optimiser recipe over 10 epochs
(9 steps each), best checkpoint by val MAE (patience 3). A minute or two on 2 CPU cores.
"""

from attnzoo.configs._common import with_variant
from attnzoo.configs._forecasting import (
    DEFAULT_PATCHES,
    SMOKE_PATHFORMER,
    forecasting_config,
)


def get_config(arg: str | None = None):
    c = forecasting_config("co2", 24, batch=128, epochs=10, patience=3)
    c.model.update(
        name="pathformer", d_model=4, d_ff=64, patch_sizes=DEFAULT_PATCHES, k=3, residual=True
    )
    c.optimizer.update(name="adamw", learning_rate=5e-4, weight_decay=0.0, clip_norm=0.0)
    c.schedule.update(name="one_cycle", pct_start=0.4, div_factor=25.0, final_div_factor=1e4)
    return with_variant(c, "pathformer_demo", arg, smoke_model=SMOKE_PATHFORMER)
